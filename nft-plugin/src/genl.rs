//! Generic netlink: the `genlmsghdr` and family lookup through nlctrl.

use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};

use crate::{
    conn::{Conn, Expect, Pending},
    error::{Error, Result},
    transport::Transport,
    wire::{self, MessageBuilder},
};

/// nlctrl's fixed family id (`GENL_ID_CTRL`).
pub const GENL_ID_CTRL: u16 = 0x10;
pub const CTRL_CMD_NEWFAMILY: u8 = 1;
pub const CTRL_CMD_GETFAMILY: u8 = 3;
pub const CTRL_ATTR_FAMILY_ID: u16 = 1;
pub const CTRL_ATTR_FAMILY_NAME: u16 = 2;
pub const CTRL_ATTR_VERSION: u16 = 3;
pub const CTRL_ATTR_HDRSIZE: u16 = 4;
pub const CTRL_ATTR_MAXATTR: u16 = 5;
/// Size of `struct genlmsghdr` (cmd, version, reserved).
pub const GENL_HDRLEN: usize = 4;

/// A request of a generic netlink family: `genlmsghdr { cmd, version }` after the header.
pub(crate) fn request(family: u16, flags: u16, seq: u32, cmd: u8, version: u8) -> MessageBuilder {
    MessageBuilder::new(family, NLM_F_REQUEST | flags, seq).fixed_header(&[cmd, version, 0, 0])
}

/// A registered generic netlink family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyInfo {
    pub id: u16,
    pub version: u32,
    pub max_attr: u32,
}

/// Looks a generic netlink family up by name over `transport`.
pub fn resolve_family<T: Transport>(transport: T, name: &str) -> Result<FamilyInfo> {
    resolve(&mut Conn::new(transport), name, "")
}

/// Looks `name` up with `CTRL_CMD_GETFAMILY`. `hint` is appended to the not-found error.
pub(crate) fn resolve<T: Transport>(
    conn: &mut Conn<T>,
    name: &str,
    hint: &'static str,
) -> Result<FamilyInfo> {
    let what = format!("{name}: generic netlink family lookup");
    if name.is_empty() || name.len() >= 16 || name.contains('\0') {
        return Err(Error::invalid(what, "not a generic netlink family name"));
    }
    let seq = conn.next_seq();
    let mut m = request(GENL_ID_CTRL, NLM_F_ACK, seq, CTRL_CMD_GETFAMILY, 1);
    m.attr_str(CTRL_ATTR_FAMILY_NAME, name);
    let pending = [Pending::new(seq, &what)];
    let answers = match conn.exchange(&m.finish(), &pending, None, Expect::Ack) {
        Err(e) if e.errno() == Some(libc::ENOENT) && matches!(e, Error::Kernel(_)) => {
            return Err(Error::FamilyNotFound {
                name: name.to_owned(),
                hint,
            })
        }
        other => other?,
    };
    let reply = answers
        .replies
        .iter()
        .find(|r| r.message_type == GENL_ID_CTRL)
        .ok_or_else(|| Error::malformed(&what, "no family in nlctrl's answer"))?;
    decode_family(&reply.payload).map_err(|e| Error::malformed(&what, e.0))
}

fn decode_family(payload: &[u8]) -> wire::Decoded<FamilyInfo> {
    let attrs = payload
        .get(GENL_HDRLEN..)
        .ok_or_else(|| wire::Malformed::new("shorter than genlmsghdr"))?;
    let (mut id, mut version, mut max_attr) = (None, 0, 0);
    for attr in wire::attrs(attrs) {
        let attr = attr?;
        match attr.kind {
            CTRL_ATTR_FAMILY_ID => id = Some(attr.u16("CTRL_ATTR_FAMILY_ID")?),
            CTRL_ATTR_VERSION => version = attr.u32("CTRL_ATTR_VERSION")?,
            CTRL_ATTR_MAXATTR => max_attr = attr.u32("CTRL_ATTR_MAXATTR")?,
            _ => {}
        }
    }
    let id = wire::required(id, "CTRL_ATTR_FAMILY_ID")?;
    Ok(FamilyInfo {
        id,
        version,
        max_attr,
    })
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;
    use crate::fake::{self, FakeKernel};

    #[test]
    fn lookup_request_bytes_and_reply() {
        let mut kernel = FakeKernel::new();
        kernel.reply(fake::family(1, "luapkt", 0x1d));
        let mut conn = Conn::new(&mut kernel);
        let info = resolve(&mut conn, "luapkt", "").unwrap();
        assert_eq!(
            info,
            FamilyInfo {
                id: 0x1d,
                version: 1,
                max_attr: u32::from(abi::netlink::attr::MAX)
            }
        );
        assert_eq!(
            kernel.sent(),
            [vec![
                32, 0, 0, 0, 0x10, 0, 5, 0, 1, 0, 0, 0, 0, 0, 0,
                0, // nlmsghdr: nlctrl, REQUEST|ACK
                3, 1, 0, 0, // CTRL_CMD_GETFAMILY, version 1
                11, 0, 2, 0, b'l', b'u', b'a', b'p', b'k', b't', 0,
                0, // CTRL_ATTR_FAMILY_NAME
            ]]
        );
    }

    #[test]
    fn missing_family_and_other_errors() {
        let mut kernel = FakeKernel::new();
        kernel.reply(vec![fake::error(1, libc::ENOENT, None)]);
        let err = resolve(
            &mut Conn::new(&mut kernel),
            "luapkt",
            " (is nft_lua loaded?)",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "luapkt: generic netlink family not found (is nft_lua loaded?)"
        );

        let mut kernel = FakeKernel::new();
        kernel.reply(vec![fake::error(1, libc::EPERM, None)]);
        let err = resolve(&mut Conn::new(&mut kernel), "luapkt", "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "luapkt: generic netlink family lookup: Operation not permitted (os error 1)"
        );
    }

    #[test]
    fn reply_without_id_is_malformed() {
        let mut kernel = FakeKernel::new();
        let m = request(GENL_ID_CTRL, 0, 1, CTRL_CMD_NEWFAMILY, 2).finish();
        kernel.reply(vec![fake::datagram(&[m, fake::ack(1)])]);
        let err = resolve(&mut Conn::new(&mut kernel), "luapkt", "").unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
    }
}
