//! Errors as the wire shows them: every failure of a request becomes one `ApiError` with the
//! modeled exception name of the service that was called. This is the one place where domain
//! and store errors meet wire names.

use crate::service::Service;
use crate::sigv4::AuthError;
use gitsync_store::StoreError;
use http::StatusCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// The service's modeled validation error.
    pub fn invalid(service: Service, message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            service.validation_exception(),
            message,
        )
    }

    /// AWS's front-end validation error, which every operation of every service may answer.
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    /// The caller may not do this (a rule of the operator's, such as where its roles may be).
    pub fn access_denied(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "AccessDeniedException", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            message,
        )
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "SerializationException", message)
    }

    pub fn unknown_operation(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            message,
        )
    }

    pub fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            "An internal error occurred; see the server log",
        )
    }

    pub fn auth(error: &AuthError) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, error.code(), error.message())
    }

    /// Maps a store error to the exception `service` models for it.
    pub fn from_store(service: Service, error: StoreError) -> Self {
        let proton = service == Service::Proton;
        match error {
            StoreError::NotFound(m) => ApiError::not_found(m),
            StoreError::AlreadyExists(m) => ApiError::new(
                StatusCode::BAD_REQUEST,
                if proton {
                    "ConflictException"
                } else {
                    "ResourceAlreadyExistsException"
                },
                m,
            ),
            StoreError::LimitExceeded(m) => ApiError::new(
                StatusCode::BAD_REQUEST,
                if proton {
                    "ServiceQuotaExceededException"
                } else {
                    "LimitExceededException"
                },
                m,
            ),
            StoreError::StillInUse(m) => ApiError::new(
                StatusCode::BAD_REQUEST,
                if proton {
                    "ConflictException"
                } else {
                    "SyncConfigurationStillExistsException"
                },
                m,
            ),
            StoreError::Conflict(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "ConflictException", m)
            }
            StoreError::Invalid(m) => ApiError::invalid(service, m),
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::internal()
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}
