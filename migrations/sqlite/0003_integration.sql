-- Who registered the transfer (a bearer-token fingerprint, or `shared`) and
-- whether it promised a returned-call signal: routine polling leans on
-- signals per integration, and a registration may decide for itself.
ALTER TABLE transfers ADD COLUMN integration TEXT;
ALTER TABLE transfers ADD COLUMN return_signal INTEGER;
