-- 002: the event framework (RFC 6665 subscriptions), RFC 3903
-- publications and presence authorization rules.
-- Times are seconds since the Unix epoch (bigint), as in 001, except the
-- publication modification times, which are microseconds (they order
-- sources for PIDF composition).

-- One row per subscription dialog this server is the notifier of.  The
-- row is written (and committed) before the SUBSCRIBE gets its 2xx, and
-- reloaded at start so NOTIFYs carry on in the same dialog.
CREATE TABLE presence_subscriptions (
    id          text    PRIMARY KEY,   -- internal key (random token)
    event       text    NOT NULL,      -- package: presence, presence.winfo, ...
    event_id    text    NOT NULL DEFAULT '',  -- Event id parameter (RFC 6665 §8.2.1)
    resource    text    NOT NULL,      -- AOR watched (sip:user@domain)
    watcher     text    NOT NULL,      -- AOR of the subscriber
    call_id     text    NOT NULL,
    local_tag   text    NOT NULL,      -- our tag: To tag of the SUBSCRIBE, From tag of NOTIFY
    remote_tag  text    NOT NULL,      -- the subscriber's From tag
    local_uri   text    NOT NULL,      -- To URI of the SUBSCRIBE (From of our NOTIFYs)
    remote_uri  text    NOT NULL,      -- From URI of the SUBSCRIBE (To of our NOTIFYs)
    contact     text    NOT NULL,      -- remote target (Request-URI of NOTIFY)
    route_set   text,                  -- Route values for NOTIFY (Record-Route reversed), ", "-joined
    source      text    NOT NULL,      -- where the SUBSCRIBE came from ("udp:1.2.3.4:5060")
    -- High-water mark of our CSeq: every CSeq sent in this dialog is
    -- below it; the server reserves blocks ahead, so a restart resumes
    -- above anything it sent.
    local_cseq  bigint  NOT NULL,
    remote_cseq bigint  NOT NULL,
    expires_at  bigint  NOT NULL,
    state       text    NOT NULL CHECK (state IN ('active', 'pending')),
    node        text,
    created_at  bigint  NOT NULL,
    updated_at  bigint  NOT NULL
);
CREATE INDEX presence_subscriptions_expires_idx ON presence_subscriptions (expires_at);
CREATE INDEX presence_subscriptions_resource_idx ON presence_subscriptions (resource, event);
CREATE INDEX presence_subscriptions_watcher_idx ON presence_subscriptions (watcher);

-- One row per publication (RFC 3903 §4.1 "event state"): the document is
-- kept byte for byte as the publisher sent it.  etag changes with every
-- modification; id does not.
CREATE TABLE presence_publications (
    id           text    PRIMARY KEY,
    etag         text    NOT NULL UNIQUE,
    event        text    NOT NULL,
    resource     text    NOT NULL,
    content_type text    NOT NULL,
    body         bytea   NOT NULL,
    expires_at   bigint  NOT NULL,
    created_us   bigint  NOT NULL,
    modified_us  bigint  NOT NULL,
    node         text
);
CREATE INDEX presence_publications_resource_idx ON presence_publications (resource, event);
CREATE INDEX presence_publications_expires_idx ON presence_publications (expires_at);

-- Who may watch whom.  watcher is an exact AOR ("sip:bob@example.com") or
-- a whole domain ("example.com"); an exact rule wins over a domain rule.
-- Changes take effect at once in running servers: after a change run
--   SELECT pg_notify('simpled_rules', 'sip:alice@example.com');
-- (payload: the presentity) and every node re-reads that presentity's rules.
CREATE TABLE presence_rules (
    presentity  text    NOT NULL,
    watcher     text    NOT NULL,
    action      text    NOT NULL CHECK (action IN ('allow', 'block', 'polite-block', 'pending')),
    updated_at  bigint  NOT NULL DEFAULT extract(epoch FROM now())::bigint,
    PRIMARY KEY (presentity, watcher)
);
