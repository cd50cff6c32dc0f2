//! Verdict codes as the guest returns them and as Lua scripts see them (`lp.ACCEPT`, ...).

/// `lp.ACCEPT`: accept the packet (terminal).
pub const ACCEPT: i32 = 1;
/// `lp.DROP`: drop the packet (terminal).
pub const DROP: i32 = 2;
/// `lp.CONTINUE`, `true` or no value: the rule matches, go on with its next statement.
pub const CONTINUE: i32 = 3;
/// `lp.BREAK` or `false`: the rule does not match, go on with the next rule.
pub const BREAK: i32 = 4;
/// `lp.QUEUE(n)` is `QUEUE_BASE + n` for an NFQUEUE number `n` in `0..=QUEUE_MAX`.
pub const QUEUE_BASE: i32 = 0x1_0000;
/// Highest NFQUEUE number.
pub const QUEUE_MAX: i32 = 0xffff;

/// A decoded verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Continue,
    Break,
    Queue(u16),
}

impl Verdict {
    /// Decodes a guest verdict code; `None` for anything that is not one.
    pub fn from_code(code: i32) -> Option<Verdict> {
        match code {
            ACCEPT => Some(Verdict::Accept),
            DROP => Some(Verdict::Drop),
            CONTINUE => Some(Verdict::Continue),
            BREAK => Some(Verdict::Break),
            c if (QUEUE_BASE..=QUEUE_BASE + QUEUE_MAX).contains(&c) => {
                Some(Verdict::Queue((c - QUEUE_BASE) as u16))
            }
            _ => None,
        }
    }

    /// The code the guest uses for this verdict.
    pub fn code(self) -> i32 {
        match self {
            Verdict::Accept => ACCEPT,
            Verdict::Drop => DROP,
            Verdict::Continue => CONTINUE,
            Verdict::Break => BREAK,
            Verdict::Queue(n) => QUEUE_BASE + i32::from(n),
        }
    }

    /// The lowercase name used in listings and JSON (`accept`, `drop`, `continue`, `break`, `queue`).
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
            Verdict::Continue => "continue",
            Verdict::Break => "break",
            Verdict::Queue(_) => "queue",
        }
    }
}

/// What a script's errors resolve to (`on-error`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnError {
    /// The rule does not match: the chain's own rules and policy decide.
    #[default]
    Break,
    Accept,
    Drop,
}

impl OnError {
    pub fn verdict(self) -> Verdict {
        match self {
            OnError::Break => Verdict::Break,
            OnError::Accept => Verdict::Accept,
            OnError::Drop => Verdict::Drop,
        }
    }

    pub fn name(self) -> &'static str {
        self.verdict().name()
    }

    pub fn from_name(s: &str) -> Option<OnError> {
        match s {
            "break" => Some(OnError::Break),
            "accept" => Some(OnError::Accept),
            "drop" => Some(OnError::Drop),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for v in [
            Verdict::Accept,
            Verdict::Drop,
            Verdict::Continue,
            Verdict::Break,
            Verdict::Queue(0),
            Verdict::Queue(65535),
        ] {
            assert_eq!(Verdict::from_code(v.code()), Some(v));
        }
        assert_eq!(Verdict::from_code(0), None);
        assert_eq!(Verdict::from_code(QUEUE_BASE + QUEUE_MAX + 1), None);
        assert_eq!(Verdict::from_code(-1), None);
    }
}
