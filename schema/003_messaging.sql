-- 003: store and forward of MESSAGE (RFC 3428) for recipients that are
-- offline.  One row per stored message; it is deleted once a contact of
-- the recipient answered 2xx.  Times are seconds since the epoch.
CREATE TABLE messages (
    id            bigserial PRIMARY KEY,  -- arrival order: delivery order
    recipient     text   NOT NULL,        -- AOR, sip:user@domain (lower-cased host)
    sender        text   NOT NULL,        -- the original From value, with its tag
    to_hdr        text   NOT NULL,        -- the original To value
    call_id       text   NOT NULL,        -- the original Call-ID (for logs)
    content_type  text,                   -- NULL: no body
    body          bytea  NOT NULL,        -- relayed untouched
    received_at   bigint NOT NULL,        -- becomes the Date of the delivery
    expires_at    bigint NOT NULL,
    node          text
);
CREATE INDEX messages_recipient_idx ON messages (recipient, id);
CREATE INDEX messages_expires_idx ON messages (expires_at);
