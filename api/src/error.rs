//! The one error type clients see. Its messages are written for clients: they name the field
//! or the thing that is wrong and never carry a database's or a library's internal text, which
//! is logged instead.
//!
//! `ApiError` deliberately does not implement `Display`: async-graphql turns any `Display`
//! error into a client-visible message, so resolvers must go through [`IntoGraphql::gql`],
//! which also sets `extensions.code`.

use std::borrow::Cow;

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};

/// Everything that can go wrong in a request, in terms a client can act on.
#[derive(Debug)]
pub enum ApiError {
    /// A field or argument holds a value we refuse; `field` is the name the client used.
    Invalid {
        field: Cow<'static, str>,
        problem: Cow<'static, str>,
    },
    /// The request as a whole is malformed (bad JSON, not an object, ...).
    BadRequest(Cow<'static, str>),
    /// The addressed thing does not exist.
    NotFound { what: &'static str, id: i64 },
    /// No PUSH monitor has the token pushed to.
    UnknownPushToken,
    /// The operation does not fit the monitor's state or kind.
    Conflict(Cow<'static, str>),
    /// No route has this path.
    NoRoute,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The body is larger than the server accepts.
    PayloadTooLarge { limit_bytes: usize },
    /// The body is not JSON.
    UnsupportedMediaType,
    /// The database cannot be reached; retrying later may work.
    Unavailable,
    /// A bug or an unexpected failure; details are in the server log only.
    Internal,
}

impl ApiError {
    /// A field-level validation error.
    pub fn invalid(
        field: impl Into<Cow<'static, str>>,
        problem: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound { .. } | Self::NoRoute | Self::UnknownPushToken => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The GraphQL `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. }
            | Self::BadRequest(_)
            | Self::PayloadTooLarge { .. }
            | Self::UnsupportedMediaType => "BAD_USER_INPUT",
            Self::NotFound { .. } | Self::NoRoute | Self::UnknownPushToken => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::MethodNotAllowed => "BAD_REQUEST",
            Self::Unavailable => "SERVICE_UNAVAILABLE",
            Self::Internal => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The client-safe message.
    pub fn message(&self) -> String {
        match self {
            Self::Invalid { field, problem } => format!("{field} {problem}"),
            Self::BadRequest(message) => message.to_string(),
            Self::NotFound { what, id } => format!("{what} {id} not found"),
            Self::NoRoute => "no such route".to_owned(),
            Self::UnknownPushToken => "no monitor has this push token".to_owned(),
            Self::Conflict(message) => message.to_string(),
            Self::MethodNotAllowed => "method not allowed on this route".to_owned(),
            Self::PayloadTooLarge { limit_bytes } => {
                format!("request body is larger than {limit_bytes} bytes")
            }
            Self::UnsupportedMediaType => {
                "request body must be JSON with Content-Type: application/json".to_owned()
            }
            Self::Unavailable => "the database is unavailable; try again shortly".to_owned(),
            Self::Internal => "internal server error".to_owned(),
        }
    }
}

impl From<service::Error> for ApiError {
    fn from(err: service::Error) -> Self {
        match err {
            service::Error::Invalid { field, problem } => Self::Invalid { field, problem },
            service::Error::NotFound { what, id } => Self::NotFound { what, id },
            service::Error::UnknownPushToken => Self::UnknownPushToken,
            service::Error::Conflict(message) => Self::Conflict(message),
            service::Error::Unavailable => Self::Unavailable,
            service::Error::Internal => Self::Internal,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message() }));
        (self.status(), body).into_response()
    }
}

/// Converts service results into GraphQL results with `extensions.code` set.
pub trait IntoGraphql<T> {
    /// The GraphQL form of this result.
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> IntoGraphql<T> for Result<T, ApiError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|err| {
            let mut error = async_graphql::Error::new(err.message());
            let code = err.code();
            let field = match &err {
                ApiError::Invalid { field, .. } => Some(field.to_string()),
                _ => None,
            };
            error = error.extend_with(|_, ext| {
                ext.set("code", code);
                if let Some(field) = field {
                    ext.set("field", field);
                }
            });
            error
        })
    }
}

impl<T> IntoGraphql<T> for Result<T, service::Error> {
    /// The service names fields in snake_case; GraphQL clients see them in camelCase.
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|err| match ApiError::from(err) {
            ApiError::Invalid { field, problem } => ApiError::Invalid {
                field: crate::graphql::camel_case_path(&field).into(),
                problem,
            },
            other => other,
        })
        .gql()
    }
}

use async_graphql::ErrorExtensions as _;
