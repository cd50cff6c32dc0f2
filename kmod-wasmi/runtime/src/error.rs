//! Error kinds of a script call and of loading a script; fixed, searchable messages.

use core::fmt;

/// Why a call did not produce a verdict. Counted per script by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A Lua runtime error or `error()`.
    Lua,
    /// The instance's memory limit was reached, or the host could not allocate what the
    /// call needed (the instance is then rebuilt).
    Memory,
    /// The call used up its fuel.
    Fuel,
    /// The call used up its Lua instruction budget.
    Instructions,
    /// Lua stack overflow, wasm call-depth limit, or nested protected calls beyond the cap.
    Stack,
    /// The entry function returned something that is not a verdict.
    Return,
    /// Any other wasm trap (the guest broke an invariant).
    Trap,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Lua,
        ErrorKind::Memory,
        ErrorKind::Fuel,
        ErrorKind::Instructions,
        ErrorKind::Stack,
        ErrorKind::Return,
        ErrorKind::Trap,
    ];

    /// Short name for stats and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Lua => "lua",
            ErrorKind::Memory => "memory",
            ErrorKind::Fuel => "fuel",
            ErrorKind::Instructions => "instructions",
            ErrorKind::Stack => "stack",
            ErrorKind::Return => "return",
            ErrorKind::Trap => "trap",
        }
    }

    /// The fixed message for kinds whose guest message adds nothing.
    pub fn message(self) -> &'static str {
        match self {
            ErrorKind::Lua => "lua error",
            ErrorKind::Memory => "out of memory",
            ErrorKind::Fuel => "out of fuel",
            ErrorKind::Instructions => "out of instructions",
            ErrorKind::Stack => "stack exhausted",
            ErrorKind::Return => "invalid return value",
            ErrorKind::Trap => "wasm trap",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Why a script could not be loaded (or an instance not built).
#[derive(Debug)]
pub enum LoadError {
    /// The guest module is not valid wasm or lacks an export the ABI needs.
    Guest(&'static str),
    /// wasmi rejected the module or the instantiation.
    Wasm(wasmi::Error),
    /// Another engine (lpctl's wasmtime) rejected the module or the instantiation: its message.
    Rejected(alloc::string::String),
    /// The module declares more than a cap allows (`abi::module_caps`), or cannot be read:
    /// refused before wasmi parses it.
    Module(crate::precheck::PrecheckError),
    /// The script does not compile; the message names the chunk and line.
    Syntax(alloc::string::String),
    /// The script's top-level chunk failed.
    Init(ErrorKind, alloc::string::String),
    /// The entry function is not a global function of the script.
    NoFunction(alloc::string::String),
    /// A limit is out of range.
    Limit(crate::limits::LimitError),
    /// Building an instance (Lua setup and the top-level chunk) used its whole load budget.
    Budget(u64),
    /// The instance's linear memory could not be reserved up to the memory limit (bytes).
    NoMemory(u64),
    /// The host stopped a load between two slices (a fatal signal reached the loader, or the
    /// module is going).
    Interrupted,
    /// The script has `percpu::ENTRIES_MAX` distinct (function, argument) entries bound.
    TooManyEntries,
    /// The instance is poisoned (waiting for its rebuild) or busy.
    Unavailable,
    /// The host could not allocate what the operation needed (an entry's copy, a host-side
    /// table): reported, never an abort.
    OutOfMemory,
    /// The script's own memory (its Lua heap) cannot hold what the operation copies in.
    ScriptMemory,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Guest(what) => write!(f, "invalid guest module: {what}"),
            LoadError::Wasm(e) => write!(f, "guest module rejected: {e}"),
            LoadError::Rejected(m) => write!(f, "guest module rejected: {m}"),
            LoadError::Module(e) => write!(f, "guest module refused: {e}"),
            LoadError::Syntax(m) => write!(f, "syntax error: {m}"),
            LoadError::Init(kind, m) if m.is_empty() => write!(f, "top-level chunk failed: {kind}"),
            // the message's first line; the traceback that follows goes to the log
            LoadError::Init(_, m) => {
                write!(
                    f,
                    "top-level chunk failed: {}",
                    m.lines().next().unwrap_or("")
                )
            }
            LoadError::NoFunction(name) => {
                write!(
                    f,
                    "entry function '{name}' is not defined (a global function)"
                )
            }
            LoadError::Limit(e) => write!(f, "invalid limit: {e}"),
            LoadError::Budget(n) => write!(
                f,
                "top-level chunk used its {n} fuel (raise it with --load-fuel, at most {})",
                abi::limits::MAX_LOAD_FUEL
            ),
            LoadError::NoMemory(n) => {
                write!(f, "cannot reserve the script's {n} bytes of linear memory")
            }
            LoadError::Interrupted => {
                f.write_str("load interrupted (a fatal signal, or the module is being removed)")
            }
            LoadError::TooManyEntries => f.write_str("too many distinct entries"),
            LoadError::Unavailable => f.write_str("instance is being rebuilt"),
            LoadError::OutOfMemory => f.write_str("out of memory"),
            LoadError::ScriptMemory => {
                f.write_str("the script's memory is full (raise it with --memory)")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for LoadError {}
