//! What every judge of a packet starts from, and what it returns.

use aya_ebpf::{helpers::bpf_skb_load_bytes, programs::SkBuffContext};
use enforcer_common::{
    lookup::{Fault, Generation},
    packet::PACKET_BYTES,
};

use crate::{
    headers::Headers,
    maps::{ImageSlot, LiveImage, Scratch},
};

/// What a cgroup_skb program returns.
pub(crate) const DROP: i32 = 0;
pub(crate) const PASS: i32 = 1;

/// The live generation, if it lists any domain, and the packet's payload
/// copied into the scratch buffer: what every judge starts from.
///
/// The dispatcher found the image in slot `S`. Missing there now, it moved
/// to the other slot in between, with an apply: a fault, counted.
#[inline(always)]
pub(crate) fn generation_and_payload<S: ImageSlot>(
    ctx: &SkBuffContext,
    packet: &Headers,
    scratch: &mut Scratch,
) -> Result<Option<LiveImage<'static>>, Fault> {
    let image = S::image().ok_or(Fault)?;
    if !Generation::new(&image).has_domains()? {
        return Ok(None);
    }
    Ok(copy_payload(ctx, packet, scratch).then_some(image))
}

/// Copies the payload, or as much as the scratch buffer holds; `false`
/// when it cannot be read.
#[inline(always)]
fn copy_payload(ctx: &SkBuffContext, packet: &Headers, scratch: &mut Scratch) -> bool {
    let len = (packet.transport.payload_len as usize).min(PACKET_BYTES);
    // SAFETY: a read of a local. It is volatile so that the compiler checks
    // the very value it passes to the helper: proving bounds of its own,
    // it would drop the check, and the verifier could not follow the proof.
    // The check is on `len - 1` against a constant, because Linux 6.1's
    // verifier learns nothing from `len != 0`, and the helper refuses a
    // length that may be zero.
    let last = unsafe { core::ptr::read_volatile(&len.wrapping_sub(1)) };
    if last >= PACKET_BYTES {
        return false;
    }
    let len = last + 1;
    // SAFETY: `len` bytes, 1 to PACKET_BYTES, fit in the buffer.
    let copied = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            packet.transport.payload,
            scratch.packet.as_mut_ptr().cast(),
            len as u32,
        )
    };
    if copied != 0 {
        return false;
    }
    scratch.copied = len;
    true
}
