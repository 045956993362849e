//! The catalog's errors, and the one mapping to gRPC statuses.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{message}")]
    InvalidArgument { code: &'static str, message: String },
    #[error("unknown concert")]
    ConcertNotFound,
    #[error("unknown concert option")]
    OptionNotFound,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl CatalogError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            code,
            message: message.into(),
        }
    }
}

impl kit::postgres::StoreError for CatalogError {
    fn database(&self) -> Option<&sqlx::Error> {
        match self {
            Self::Database(error) => Some(error),
            _ => None,
        }
    }
}

impl From<CatalogError> for Status {
    fn from(error: CatalogError) -> Self {
        let (code, error_code) = match &error {
            CatalogError::InvalidArgument { code, .. } => (Code::InvalidArgument, *code),
            CatalogError::ConcertNotFound => (Code::NotFound, "CONCERT_NOT_FOUND"),
            CatalogError::OptionNotFound => (Code::NotFound, "OPTION_NOT_FOUND"),
            CatalogError::Database(error) if kit::postgres::is_unavailable(error) => {
                (Code::Unavailable, "CATALOG_STORE_UNAVAILABLE")
            }
            CatalogError::Database(_) => (Code::Internal, "INTERNAL"),
        };
        if matches!(code, Code::Unavailable | Code::Internal) {
            tracing::error!(%error, "catalog store failure");
        }
        kit::error_code::status(code, error_code, error.to_string())
    }
}
