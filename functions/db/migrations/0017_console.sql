-- The park console (issue 14): one-time sign-in links and the sessions they open. Written and read by
-- functions/adapters/console_repo.py. Only SHA-256 hashes of the tokens are stored: a database dump gives no
-- way in. In Azure, people sign in through App Service authentication (Entra ID); these links are the local
-- sign-in and the audited break-glass path (`trapalert console login-url`).

CREATE TABLE console_login_links (
    id          bigserial PRIMARY KEY,
    token_hash  text NOT NULL UNIQUE,
    user_name   text NOT NULL,
    role        text NOT NULL CHECK (role IN ('viewer', 'ranger', 'operator', 'admin')),
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz                       -- set once: a link opens one session, never two
);

CREATE TABLE console_sessions (
    token_hash  text PRIMARY KEY,
    user_name   text NOT NULL,
    role        text NOT NULL CHECK (role IN ('viewer', 'ranger', 'operator', 'admin')),
    link_id     bigint REFERENCES console_login_links(id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);
