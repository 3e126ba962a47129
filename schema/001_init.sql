-- 001: users and the location service (RFC 3261 §10).
-- Times are seconds since the Unix epoch (bigint) so that the server, which
-- keeps its hot state in memory, compares them without conversions.

CREATE TABLE users (
    username     text NOT NULL,
    domain       text NOT NULL,
    -- HA1 = H(username:realm:password); the realm is the domain.  The
    -- password itself is never stored.
    ha1_md5      text NOT NULL,
    ha1_sha256   text NOT NULL,
    display_name text,
    photo_url    text,
    created_at   bigint NOT NULL DEFAULT extract(epoch FROM now())::bigint,
    PRIMARY KEY (username, domain)
);

-- One row per binding of an address-of-record.
CREATE TABLE location (
    aor         text    NOT NULL,  -- sip:user@domain, lower-cased host
    contact     text    NOT NULL,  -- the Contact URI as registered
    expires_at  bigint  NOT NULL,  -- absolute expiry
    q           real    NOT NULL DEFAULT 1.0,
    call_id     text    NOT NULL,
    cseq        bigint  NOT NULL,
    -- Where the REGISTER came from ("udp:1.2.3.4:5060", "tcp:[::1]:5070"),
    -- used to reach contacts behind NAT and over their TCP connection.
    source      text    NOT NULL,
    user_agent  text,
    instance    text,              -- +sip.instance (RFC 5626), if any
    path        text,              -- Path header values (RFC 3327), if any
    node        text,              -- which simpled node holds the TCP connection
    updated_at  bigint  NOT NULL DEFAULT extract(epoch FROM now())::bigint,
    PRIMARY KEY (aor, contact)
);
CREATE INDEX location_expires_idx ON location (expires_at);
