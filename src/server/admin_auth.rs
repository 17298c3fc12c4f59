//! Who may call the admin listener's `POST` endpoints (`/test-sms`): one
//! small check, shared by every endpoint that changes something.
//!
//! The same rule as the status page ([`crate::config::Config::admin_token_required`]):
//! with `HOTLINE_ADMIN_TOKEN` set, a request must carry
//! `Authorization: Bearer <token>`; without a token they answer only the
//! embedded development default on a loopback admin listener; a
//! production configuration without a token refuses them.

use http::{HeaderMap, StatusCode, header};

use crate::config::{ADMIN_TOKEN_VAR, Config};

/// What a refused request is told: which of the two is wrong, never the
/// token.
pub fn refusal_body(status: StatusCode) -> String {
    if status == StatusCode::FORBIDDEN {
        format!(
            "not authorized: {ADMIN_TOKEN_VAR} is not set, and this configuration needs it (a production one, or an admin listener off loopback): set it on the server, then send Authorization: Bearer <token>\n"
        )
    } else {
        format!(
            "not authorized: the Authorization: Bearer <token> header is missing or does not match {ADMIN_TOKEN_VAR}\n"
        )
    }
}

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
    if token.matches(presented(headers)) {
        Ok(())
    } else {
        Err(StatusCode::UNAUTHORIZED)
    }
}

/// The token an `Authorization: Bearer <token>` header presents, the
/// same for every admin route: the scheme in any case (RFC 7235), the
/// token without the spaces around it; `""` for none (hostile-traffic
/// audit: `/reload` and the status pages read it two ways).
pub fn presented(headers: &http::HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .and_then(|v| {
            let (scheme, rest) = v.split_once([' ', '\t'])?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .unwrap_or("")
}

#[cfg(test)]
mod presented_tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_read_one_way() {
        let with = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            presented(&h).to_owned()
        };
        for v in ["Bearer tok", "bearer tok", "BEARER  tok ", "Bearer\ttok"] {
            assert_eq!(with(v), "tok", "{v:?}");
        }
        for v in ["Basic tok", "Bearertok", "tok", "Bearer"] {
            assert_eq!(with(v), "", "{v:?}");
        }
        assert_eq!(presented(&http::HeaderMap::new()), "");
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;

    /// README quotes both answers: the quotes and the code agree, and
    /// neither carries a token.
    #[test]
    fn the_refusals_say_what_is_wrong_as_the_readme_quotes_them() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let wrong = refusal_body(StatusCode::UNAUTHORIZED);
        assert!(readme.contains(&format!("`{}`", wrong.trim())), "{wrong}");
        let unset = refusal_body(StatusCode::FORBIDDEN);
        let quoted = "not authorized: HOTLINE_ADMIN_TOKEN is not set, ";
        assert!(unset.starts_with(quoted), "{unset}");
        assert!(
            readme.contains(&format!("`{quoted}…`")),
            "README quotes {quoted:?}"
        );
    }
}
