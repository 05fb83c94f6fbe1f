-- AlterTable
ALTER TABLE "Run" ADD COLUMN     "agentTokenHash" TEXT,
ADD COLUMN     "workerId" TEXT;

-- CreateTable
CREATE TABLE "Node" (
    "id" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "startedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "heartbeatAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Node_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AgentSessionFile" (
    "runId" TEXT NOT NULL,
    "path" TEXT NOT NULL,
    "root" TEXT NOT NULL,
    "content" BYTEA NOT NULL,

    CONSTRAINT "AgentSessionFile_pkey" PRIMARY KEY ("runId","path")
);

-- CreateIndex
CREATE UNIQUE INDEX "Run_agentTokenHash_key" ON "Run"("agentTokenHash");

-- CreateIndex
CREATE INDEX "Run_workerId_status_idx" ON "Run"("workerId", "status");

-- AddForeignKey
ALTER TABLE "AgentSessionFile" ADD CONSTRAINT "AgentSessionFile_runId_fkey" FOREIGN KEY ("runId") REFERENCES "Run"("id") ON DELETE CASCADE ON UPDATE CASCADE;

