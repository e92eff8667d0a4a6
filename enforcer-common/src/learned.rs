//! The learned-address map: destinations that DNS answers and TLS
//! ClientHellos gave for listed domains, each held for one owner.
//!
//! Who owns an entry decides whom it binds, so that nobody can turn a
//! learned block against anyone else:
//!
//! - An answer that a socket of a system uid received (below the policy's
//!   `learned_shared_below_uid`: resolvers such as systemd-resolved, nscd
//!   and dnsmasq, and root) binds everyone. Applications often resolve
//!   through such a daemon over a Unix socket, so its answers are the ones
//!   that must block for all.
//! - An answer that a user's socket received binds that uid alone. A user
//!   who runs a resolver of their own can make it answer anything, such as
//!   the gateway's address for a listed name.
//! - A ClientHello's destination binds the uid that sent it, and only for
//!   a short while: the destination may be a proxy that carries every
//!   other user's traffic too.
//!
//! The map never evicts. Each owner may hold a bounded number of entries
//! (a quota the policy sets); an address that cannot be stored is not
//! learned, and the kernel drops what carried it instead, so a flood can
//! push out nobody's entries, its sender's own included. The daemon
//! deletes expired entries.
//!
//! An owner's count is kept in two maps with one writer each, so that no
//! update is lost: the programs add to `LEARNED_ADDED` atomically, and the
//! daemon alone writes `LEARNED_ADJUSTED`, the entries it deleted less
//! those it copied in from an earlier instance ([`held`]).

use crate::decision::Action;

/// The owner of entries that bind every uid.
pub const SHARED_OWNER: u32 = u32::MAX;

/// Entries the learned map holds in all, allocated as they are learned.
pub const LEARNED_CAPACITY: u32 = 131_072;

/// Entries the shared owner may hold: half the map, so that users' quotas
/// always have the other half.
pub const SHARED_QUOTA: u64 = LEARNED_CAPACITY as u64 / 2;

/// Owners the quota map counts at once. An owner whose entries have all
/// expired is forgotten at the next sweep.
pub const MAX_OWNERS: u32 = 1_024;

/// How many entries an owner holds, from what the programs `added` and
/// what the daemon `adjusted`; never below zero.
#[inline(always)]
pub const fn held(added: u64, adjusted: i64) -> u64 {
    if adjusted < 0 {
        added.saturating_add(adjusted.unsigned_abs())
    } else {
        added.saturating_sub(adjusted as u64)
    }
}

/// The owner of an address learned from a DNS answer that a socket of
/// `uid` received (see the module doc).
#[inline(always)]
pub const fn answer_owner(uid: u32, shared_below_uid: u32) -> u32 {
    if uid < shared_below_uid {
        SHARED_OWNER
    } else {
        uid
    }
}

/// The key of the learned map: an owner and an address, IPv6 in network
/// order (IPv4 as `::ffff:a.b.c.d`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LearnedKey {
    /// A uid, or [`SHARED_OWNER`].
    pub owner: u32,
    /// The address.
    pub address: [u8; 16],
}

/// A destination learned from a name.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearnedAddress {
    /// `CLOCK_BOOTTIME` when the address stops being listed.
    pub expires_boot_ns: u64,
    /// Whole-name hash of the listed domain (see `crate::domain`): the
    /// hooks look it up in the live generation, so a policy that drops the
    /// domain stops the entry at once.
    pub domain_hash: u64,
    /// The [`Action`] of that domain when the address was learned, which
    /// decides whether a later answer may replace the entry.
    pub action: u32,
    /// Zero.
    pub reserved: u32,
}

impl LearnedAddress {
    /// Whether an entry for the same owner and address, learned at
    /// `now_boot_ns` for a domain whose action is `action`, takes this
    /// one's place: always once this one has expired, and otherwise unless
    /// this one's action outranks it. So an allowed name keeps an address
    /// that a blocked name on the same front end also gives, as an allow
    /// wins everywhere else in a policy.
    #[inline(always)]
    pub const fn yields_to(&self, action: Action, now_boot_ns: u64) -> bool {
        self.expires_boot_ns <= now_boot_ns || action_rank(self.action) <= action.rank()
    }
}

#[inline(always)]
const fn action_rank(action: u32) -> u8 {
    match action {
        1 => Action::Allow.rank(),
        2 => Action::Block.rank(),
        3 => Action::Audit.rank(),
        _ => Action::None.rank(),
    }
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<LearnedKey>() == 20);
    assert!(offset_of!(LearnedKey, owner) == 0);
    assert!(offset_of!(LearnedKey, address) == 4);
    assert!(size_of::<LearnedAddress>() == 24);
    assert!(offset_of!(LearnedAddress, expires_boot_ns) == 0);
    assert!(offset_of!(LearnedAddress, domain_hash) == 8);
    assert!(offset_of!(LearnedAddress, action) == 16);
    assert!(offset_of!(LearnedAddress, reserved) == 20);
    assert!(Action::Allow as u32 == 1 && Action::Block as u32 == 2 && Action::Audit as u32 == 3);
};

#[cfg(feature = "user")]
// SAFETY: plain old data, every bit pattern valid, no padding (checked above).
unsafe impl aya::Pod for LearnedKey {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for LearnedAddress {}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: Action, expires_boot_ns: u64) -> LearnedAddress {
        LearnedAddress {
            expires_boot_ns,
            domain_hash: 7,
            action: action as u32,
            reserved: 0,
        }
    }

    #[test]
    fn an_owner_holds_what_was_added_less_what_the_daemon_took_back() {
        assert_eq!(held(10, 3), 7);
        assert_eq!(held(10, -2), 12, "entries copied in at a takeover");
        assert_eq!(held(3, 5), 0, "a lost add never wraps into a full quota");
        assert_eq!(held(u64::MAX, i64::MIN), u64::MAX);
        assert_eq!(held(0, i64::MAX), 0);
    }

    #[test]
    fn system_uids_share_their_answers_and_users_keep_theirs() {
        assert_eq!(answer_owner(0, 1000), SHARED_OWNER);
        assert_eq!(answer_owner(999, 1000), SHARED_OWNER);
        assert_eq!(answer_owner(1000, 1000), 1000);
        assert_eq!(answer_owner(100_000, 1000), 100_000);
        assert_eq!(answer_owner(0, 0), 0, "0 shares nothing");
    }

    #[test]
    fn a_live_allow_keeps_its_address_and_an_expired_one_gives_it_up() {
        let allowed = entry(Action::Allow, 100);
        assert!(!allowed.yields_to(Action::Block, 99));
        assert!(!allowed.yields_to(Action::Audit, 99));
        assert!(allowed.yields_to(Action::Allow, 99), "a refresh");
        assert!(allowed.yields_to(Action::Block, 100));
    }

    #[test]
    fn a_block_yields_to_an_allow_and_to_itself_but_not_to_an_audit() {
        let blocked = entry(Action::Block, 100);
        assert!(blocked.yields_to(Action::Allow, 0));
        assert!(blocked.yields_to(Action::Block, 0));
        assert!(!blocked.yields_to(Action::Audit, 0));
        assert!(entry(Action::Audit, 100).yields_to(Action::Block, 0));
    }
}
