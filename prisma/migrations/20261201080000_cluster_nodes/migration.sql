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
