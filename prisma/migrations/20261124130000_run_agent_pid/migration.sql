-- AlterTable
ALTER TABLE "Run" ADD COLUMN "agentPid" INTEGER;
