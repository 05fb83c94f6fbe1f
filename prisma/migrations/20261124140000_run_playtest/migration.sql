-- AlterTable
ALTER TABLE "Run" ADD COLUMN "playtestCommand" TEXT;
ALTER TABLE "Run" ADD COLUMN "playtestEndedAt" DATETIME;
ALTER TABLE "Run" ADD COLUMN "playtestExitCode" INTEGER;
ALTER TABLE "Run" ADD COLUMN "playtestPid" INTEGER;
ALTER TABLE "Run" ADD COLUMN "playtestSignal" TEXT;
ALTER TABLE "Run" ADD COLUMN "playtestStartedAt" DATETIME;
