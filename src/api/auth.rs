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
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
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
