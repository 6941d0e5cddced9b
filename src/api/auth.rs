//! Bearer-token auth for `/v1`, compared in constant time.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

pub async fn require_token(State(app): State<AppState>, request: Request, next: Next) -> Response {
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
    // Check every token so timing does not reveal which one (or how many) matched.
    let matched = tokens.iter().fold(0u8, |acc, token| {
        acc | token
            .expose_secret()
            .as_bytes()
            .ct_eq(presented.as_bytes())
            .unwrap_u8()
    });
    if matched == 1 {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}
