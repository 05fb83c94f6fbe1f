-- Runs name their agent; the command line moves to agentCommand, and the session reference is no
-- longer pi-specific. Every run before this migration ran pi.
ALTER TABLE "Run" ADD COLUMN "agentCommand" TEXT NOT NULL DEFAULT '';
UPDATE "Run" SET "agentCommand" = "agent", "agent" = 'pi';
ALTER TABLE "Run" RENAME COLUMN "sessionFile" TO "agentSession";
