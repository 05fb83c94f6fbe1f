-- Postgres equivalent of prisma/migrations up to 20261201060000_card_column_order, authored with
-- `prisma migrate diff --config prisma.pg.config.ts --from-empty --to-schema-datamodel prisma/pg/schema.prisma --script`.
-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "CardColumn" AS ENUM ('BACKLOG', 'TODO', 'IN_PROGRESS', 'REVIEW', 'DONE');

-- CreateEnum
CREATE TYPE "ReferenceKind" AS ENUM ('FILE', 'URL', 'CARD', 'NOTE');

-- CreateEnum
CREATE TYPE "RunStatus" AS ENUM ('QUEUED', 'STARTING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED', 'INTERRUPTED');

-- CreateTable
CREATE TABLE "Card" (
    "id" TEXT NOT NULL,
    "title" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "column" "CardColumn" NOT NULL DEFAULT 'BACKLOG',
    "position" INTEGER NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    "columnOrder" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "Card_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "CardTag" (
    "cardId" TEXT NOT NULL,
    "name" TEXT NOT NULL,

    CONSTRAINT "CardTag_pkey" PRIMARY KEY ("cardId","name")
);

-- CreateTable
CREATE TABLE "CardReference" (
    "id" TEXT NOT NULL,
    "cardId" TEXT NOT NULL,
    "kind" "ReferenceKind" NOT NULL,
    "target" TEXT NOT NULL,
    "note" TEXT NOT NULL DEFAULT '',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "CardReference_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Comment" (
    "id" TEXT NOT NULL,
    "cardId" TEXT NOT NULL,
    "author" TEXT NOT NULL,
    "body" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Comment_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Run" (
    "id" TEXT NOT NULL,
    "cardId" TEXT NOT NULL,
    "status" "RunStatus" NOT NULL DEFAULT 'QUEUED',
    "prompt" TEXT NOT NULL,
    "agent" TEXT NOT NULL DEFAULT '',
    "agentCommand" TEXT NOT NULL DEFAULT '',
    "useWorktree" BOOLEAN NOT NULL DEFAULT true,
    "cleanupOnFinish" BOOLEAN NOT NULL DEFAULT false,
    "branch" TEXT,
    "baseBranch" TEXT,
    "baseSha" TEXT,
    "worktreePath" TEXT,
    "ownsWorktree" BOOLEAN NOT NULL DEFAULT false,
    "worktreeMissing" BOOLEAN NOT NULL DEFAULT false,
    "agentSession" TEXT,
    "agentPid" INTEGER,
    "refinedFromId" TEXT,
    "exitCode" INTEGER,
    "exitSignal" TEXT,
    "error" TEXT,
    "mergedSha" TEXT,
    "lastSeq" INTEGER NOT NULL DEFAULT 0,
    "playtestCommand" TEXT,
    "playtestPid" INTEGER,
    "playtestStartedAt" TIMESTAMP(3),
    "playtestEndedAt" TIMESTAMP(3),
    "playtestExitCode" INTEGER,
    "playtestSignal" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMP(3),
    "endedAt" TIMESTAMP(3),

    CONSTRAINT "Run_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "RunEvent" (
    "id" TEXT NOT NULL,
    "runId" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "type" TEXT NOT NULL,
    "data" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "RunEvent_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "BoardEvent" (
    "seq" SERIAL NOT NULL,
    "type" TEXT NOT NULL,
    "cardId" TEXT,
    "runId" TEXT,
    "actorRunId" TEXT,
    "data" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "BoardEvent_pkey" PRIMARY KEY ("seq")
);

-- CreateIndex
CREATE INDEX "Card_column_position_idx" ON "Card"("column", "position");

-- CreateIndex
CREATE INDEX "Card_columnOrder_position_idx" ON "Card"("columnOrder", "position");

-- CreateIndex
CREATE INDEX "CardTag_name_idx" ON "CardTag"("name");

-- CreateIndex
CREATE INDEX "CardReference_cardId_createdAt_idx" ON "CardReference"("cardId", "createdAt");

-- CreateIndex
CREATE INDEX "Comment_cardId_createdAt_idx" ON "Comment"("cardId", "createdAt");

-- CreateIndex
CREATE INDEX "Run_cardId_createdAt_idx" ON "Run"("cardId", "createdAt");

-- CreateIndex
CREATE INDEX "Run_status_createdAt_idx" ON "Run"("status", "createdAt");

-- CreateIndex
CREATE INDEX "Run_refinedFromId_idx" ON "Run"("refinedFromId");

-- CreateIndex
CREATE UNIQUE INDEX "RunEvent_runId_seq_key" ON "RunEvent"("runId", "seq");

-- AddForeignKey
ALTER TABLE "CardTag" ADD CONSTRAINT "CardTag_cardId_fkey" FOREIGN KEY ("cardId") REFERENCES "Card"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "CardReference" ADD CONSTRAINT "CardReference_cardId_fkey" FOREIGN KEY ("cardId") REFERENCES "Card"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Comment" ADD CONSTRAINT "Comment_cardId_fkey" FOREIGN KEY ("cardId") REFERENCES "Card"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Run" ADD CONSTRAINT "Run_cardId_fkey" FOREIGN KEY ("cardId") REFERENCES "Card"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Run" ADD CONSTRAINT "Run_refinedFromId_fkey" FOREIGN KEY ("refinedFromId") REFERENCES "Run"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "RunEvent" ADD CONSTRAINT "RunEvent_runId_fkey" FOREIGN KEY ("runId") REFERENCES "Run"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Not a Prisma model (only Postgres needs it): the board log's seq counter (src/orchestrator/pg-logs.ts). One row,
-- bumped in each writing transaction and locked until it commits, so board seqs commit in order and a follower
-- reading "seq > last" never skips an entry that commits late (a SERIAL would allow that).
CREATE TABLE "BoardEventSeq" (
    "id" INTEGER NOT NULL,
    "lastSeq" INTEGER NOT NULL,

    CONSTRAINT "BoardEventSeq_pkey" PRIMARY KEY ("id")
);
INSERT INTO "BoardEventSeq" ("id", "lastSeq") VALUES (1, 0);
