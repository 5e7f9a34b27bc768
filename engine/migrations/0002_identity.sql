-- Identity: refresh tokens (rotated, grouped in families for theft detection) and API keys.
-- Secrets are never stored: only their SHA-256 (they are long random strings, so a fast hash
-- is enough; passwords, which are not, use argon2id in users.password_hash).

CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    user_id     uuid NOT NULL REFERENCES users(id),
    family_id   uuid NOT NULL,                 -- every token rotated from one login
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,                   -- set once, when rotated; a second use is theft
    revoked_at  timestamptz                    -- logout or theft detection, for the whole family
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix       text NOT NULL,                -- first characters of the key, shown to tell keys apart
    key_hash     bytea NOT NULL UNIQUE,
    scopes       text[] NOT NULL DEFAULT '{}',
    plan         text NOT NULL CHECK (plan IN ('standard', 'enterprise')),
    created_by   uuid REFERENCES users(id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at DESC, id);
