-- Cards list in board order (BACKLOG, TODO, IN_PROGRESS, REVIEW, DONE), not alphabetically by column.
ALTER TABLE "Card" ADD COLUMN "columnOrder" INTEGER NOT NULL DEFAULT 0;
UPDATE "Card" SET "columnOrder" = CASE "column" WHEN 'BACKLOG' THEN 0 WHEN 'TODO' THEN 1 WHEN 'IN_PROGRESS' THEN 2 WHEN 'REVIEW' THEN 3 WHEN 'DONE' THEN 4 ELSE 0 END;
CREATE INDEX "Card_columnOrder_position_idx" ON "Card"("columnOrder", "position");
