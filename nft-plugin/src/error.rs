//! The crate's one error type.

use std::{fmt, io};

/// Everything that can go wrong talking to the kernel. Each variant names what failed: the
/// object (`chain inet filter lua-web`, `script web`) or the step (`netlink socket`).
///
/// Each message is whole (it includes the errno's text), so no variant has a `source()`: a
/// chain printed with `{:#}` would say everything twice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket itself failed (open, send, receive).
    #[error("{what}: {error}")]
    Io { what: String, error: io::Error },
    /// The kernel refused a request.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// A generic netlink family is not registered.
    #[error("{name}: generic netlink family not found{hint}")]
    FamilyNotFound { name: String, hint: &'static str },
    /// A reply that does not decode: truncated, wrong lengths, missing attributes.
    #[error("{what}: malformed reply from the kernel: {reason}")]
    Malformed { what: String, reason: String },
    /// A request this crate refuses to send (a name too long, a package too large...).
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

impl Error {
    /// The errno the kernel answered with, if this is a refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel(e) => Some(e.errno()),
            Error::Io { error, .. } => error.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn io(what: impl Into<String>, error: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            error,
        }
    }

    pub(crate) fn malformed(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Malformed {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// The kernel refused a request: the errno, and extack's message when it sent one.
///
/// Displays as `chain inet filter lua-web: No such file or directory (os error 2)`, with the
/// attribute the kernel pointed at and its message when present:
/// `rule inet filter lua-web: expression lua: No such file or directory (os error 2) (the
/// kernel has no `lua` expression: is nft_lua loaded?)`.
#[derive(Debug)]
pub struct KernelError {
    /// What the request was about.
    pub what: String,
    /// The attribute extack's offset points at, named after what it carries.
    pub attribute: Option<String>,
    pub source: io::Error,
    /// extack's `NLMSGERR_ATTR_MSG`.
    pub message: Option<String>,
    /// What this errno means here, when this crate knows better than strerror.
    pub hint: Option<String>,
}

impl KernelError {
    pub fn errno(&self) -> i32 {
        self.source.raw_os_error().unwrap_or_default()
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.what)?;
        if let Some(attribute) = &self.attribute {
            write!(f, "{attribute}: ")?;
        }
        write!(f, "{}", self.source)?;
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

// no source(): the message includes the errno's text already
impl std::error::Error for KernelError {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
