-- The SIP instruction made when the transfer completed, served as sent by
-- GET /v1/transfers/{id}/sip.
ALTER TABLE transfers ADD COLUMN sip_json TEXT;
