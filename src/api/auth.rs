//! Bearer-token auth for `/v1`, compared in constant time.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::limit::TokenId;

use super::AppState;
use super::error::ApiError;

pub async fn require_token(
    State(app): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let tokens = &app.config.http.api_tokens;
    if tokens.is_empty() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credentials);
    let Some(presented) = presented else {
        return ApiError::Unauthorized.into_response();
    };
    // Compare against every token, without branching on the result, so
    // timing reveals neither which token matched nor whether any did.
    // `matched` is the 1-based index of the matching token, 0 for none.
    let mut matched = 0u64;
    for (index, token) in tokens.iter().enumerate() {
        let equal = token.expose_secret().as_bytes().ct_eq(presented.as_bytes());
        matched = u64::conditional_select(&matched, &(index as u64 + 1), equal);
    }
    match matched {
        0 => ApiError::Unauthorized.into_response(),
        n => {
            request.extensions_mut().insert(TokenId(n as usize - 1));
            next.run(request).await
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// matched without regard to case (RFC 9110 §11.1: `bearer` and `BEARER`
/// are the same scheme), and it must be followed by whitespace.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_at_checked(6)?;
    let token = rest.strip_prefix([' ', '\t'])?.trim();
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// The integration a request belongs to, for learning signal trust: a
/// fingerprint of its bearer token (never the token itself), or the shared
/// bucket when auth is off. Stable across restarts and token reordering.
pub fn integration_name(tokens: &[secrecy::SecretString], token: Option<TokenId>) -> String {
    use sha2::{Digest, Sha256};
    let Some(secret) = token.and_then(|t| tokens.get(t.0)) else {
        return crate::tracker::SHARED_INTEGRATION.to_string();
    };
    let digest = Sha256::digest(secret.expose_secret().as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("tok-{hex}")
}

#[cfg(test)]
mod tests {
    use super::bearer_credentials;

    #[test]
    fn the_scheme_is_matched_without_regard_to_case() {
        for value in ["Bearer tok", "bearer tok", "BEARER  tok ", "bEaReR\ttok"] {
            assert_eq!(bearer_credentials(value), Some("tok"), "{value:?}");
        }
        for value in ["Basic tok", "Bearertok", "Bearer", "Bear", "", "Béarer tok"] {
            assert_eq!(bearer_credentials(value), None, "{value:?}");
        }
        assert_eq!(bearer_credentials("Bearer "), Some(""));
    }
}
