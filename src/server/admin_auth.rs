//! Who may call the admin listener's `POST` endpoints (`/test-sms`): one
//! small check, shared by every endpoint that changes something.
//!
//! With `HOTLINE_ADMIN_TOKEN` set, a request must carry
//! `Authorization: Bearer <token>`. Without it, such endpoints answer only
//! a gateway running on the development key (no `HOTLINE_PII_KEY`, never
//! production); in production they are refused until a token is set.

use http::{HeaderMap, StatusCode, header};

use crate::config::Config;

/// Whether this request may use an admin `POST` endpoint; the status to
/// answer when not (401 wrong or missing token, 403 no token configured in
/// production).
///
/// # Errors
/// The refusal's status.
pub fn authorize(config: &Config, headers: &HeaderMap) -> Result<(), StatusCode> {
    let Some(token) = &config.server.admin_token else {
        return if config.privacy.is_dev_key {
            Ok(())
        } else {
            Err(StatusCode::FORBIDDEN)
        };
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if token.matches(given.trim()) {
        Ok(())
    } else {
        Err(StatusCode::UNAUTHORIZED)
    }
}
