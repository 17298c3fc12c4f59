//! Who may call the admin listener's `POST` endpoints (`/test-sms`): one
//! small check, shared by every endpoint that changes something.
//!
//! The same rule as the status page ([`crate::config::Config::admin_token_required`]):
//! with `HOTLINE_ADMIN_TOKEN` set, a request must carry
//! `Authorization: Bearer <token>`; without a token they answer only the
//! embedded development default on a loopback admin listener; a
//! production configuration without a token refuses them.

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
        return if config.admin_token_required() {
            Err(StatusCode::FORBIDDEN)
        } else {
            Ok(())
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
