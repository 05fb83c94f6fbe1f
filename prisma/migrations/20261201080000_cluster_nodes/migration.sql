-- Scale-out (issue 15): runs held by workers, with heartbeats as their lease, and agent tokens stored hashed.
ALTER TABLE "Run" ADD COLUMN "workerId" TEXT;
ALTER TABLE "Run" ADD COLUMN "agentTokenHash" TEXT;
CREATE UNIQUE INDEX "Run_agentTokenHash_key" ON "Run"("agentTokenHash");
CREATE INDEX "Run_workerId_status_idx" ON "Run"("workerId", "status");

CREATE TABLE "Node" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "role" TEXT NOT NULL,
    "startedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "heartbeatAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- A settled run's agent session files, so a refine on another node can resume it.
CREATE TABLE "AgentSessionFile" (
    "runId" TEXT NOT NULL,
    "path" TEXT NOT NULL,
    "root" TEXT NOT NULL,
    "content" BLOB NOT NULL,

    PRIMARY KEY ("runId", "path"),
    CONSTRAINT "AgentSessionFile_runId_fkey" FOREIGN KEY ("runId") REFERENCES "Run" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
