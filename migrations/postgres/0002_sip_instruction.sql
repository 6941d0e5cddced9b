-- Twin of migrations/sqlite/0002_sip_instruction.sql.
ALTER TABLE transfers ADD COLUMN sip_json TEXT;
