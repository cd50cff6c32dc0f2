//! Per-script sandbox limits and their validation.

use abi::limits::*;
use core::fmt;

/// What one script may consume. Set at load, changeable live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wasm fuel per call, refilled before every packet.
    pub fuel: u64,
    /// Lua VM instructions per call (0: no budget; fuel still bounds the call).
    pub instructions: u32,
    /// Linear memory of one instance, in bytes.
    pub memory: u64,
    /// wasm call-frame depth within one entry into the guest.
    pub recursion: u32,
    /// Nested protected calls (`pcall`, `coroutine.resume`, ...): each re-enters the host.
    pub pcall_depth: u32,
    /// Fuel for building one instance (Lua setup and the top-level chunk), process context.
    pub load_fuel: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: DEFAULT_FUEL,
            instructions: DEFAULT_INSTRUCTIONS,
            memory: DEFAULT_MEMORY,
            recursion: DEFAULT_RECURSION,
            pcall_depth: DEFAULT_PCALL_DEPTH,
            load_fuel: DEFAULT_LOAD_FUEL,
        }
    }
}

/// A limit outside its accepted range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitError {
    pub field: &'static str,
    pub value: u64,
    pub min: u64,
    pub max: u64,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} is out of range ({}..={})",
            self.field, self.value, self.min, self.max
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for LimitError {}

fn check(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), LimitError> {
    if value < min || value > max {
        return Err(LimitError {
            field,
            value,
            min,
            max,
        });
    }
    Ok(())
}

impl Limits {
    /// Checks every field against its range (abi::limits).
    pub fn validate(&self) -> Result<(), LimitError> {
        check("fuel", self.fuel, 1, MAX_FUEL)?;
        check(
            "instructions",
            self.instructions.into(),
            0,
            MAX_INSTRUCTIONS.into(),
        )?;
        check("memory", self.memory, MIN_MEMORY, MAX_MEMORY)?;
        check("recursion", self.recursion.into(), 16, MAX_RECURSION.into())?;
        check(
            "pcall-depth",
            self.pcall_depth.into(),
            1,
            MAX_PCALL_DEPTH.into(),
        )?;
        check("load-fuel", self.load_fuel, MIN_LOAD_FUEL, MAX_LOAD_FUEL)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounds_are_enforced() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let zero_fuel = Limits {
            fuel: 0,
            ..Limits::default()
        };
        assert_eq!(zero_fuel.validate().unwrap_err().field, "fuel");
        let huge_mem = Limits {
            memory: 1 << 40,
            ..Limits::default()
        };
        assert_eq!(huge_mem.validate().unwrap_err().field, "memory");
        let deep = Limits {
            pcall_depth: 1000,
            ..Limits::default()
        };
        assert_eq!(deep.validate().unwrap_err().field, "pcall-depth");
    }
}
