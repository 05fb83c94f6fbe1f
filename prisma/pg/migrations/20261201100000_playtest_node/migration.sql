-- AlterTable
ALTER TABLE "Run" ADD COLUMN     "playtestNodeId" TEXT;
