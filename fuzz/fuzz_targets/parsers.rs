//! The kernel's DNS and TLS parsers and its domain matcher on arbitrary
//! bytes, as `enforcer_common` runs them in userspace. The first byte of
//! an input picks the parser, the rest is the packet payload. Beyond "never
//! panics", each parse that succeeds must give what the kernel relies on:
//! names in the matcher's form, bounded lengths, and a chain's word only
//! from listed names.
#![no_main]

use std::sync::LazyLock;

use enforcer::{
    compile::compile,
    policy::{Source, parse},
};
use enforcer_common::{
    decision::Action,
    dns::{self, Stop},
    domain::{MAX_NAME_LEN, NAME_BYTES, Name},
    lookup::Generation,
    packet::{PACKET_BYTES, Packet},
    repeat::Plain,
    tls,
};
use libfuzzer_sys::fuzz_target;

/// Domains the seeds in `corpus/parsers` name, so that mutations reach the
/// matcher's hits as well as its misses.
const POLICY: &str = r#"
version = 1
[[block]]
name = "messengers"
domains = ["whatsapp.net", "t.me", "telegram.org"]
[[block]]
name = "audited"
mode = "audit"
domains = ["example.net"]
[[allow]]
name = "mirror"
domains = ["corp.telegram.org"]
"#;

static IMAGE: LazyLock<Vec<u64>> = LazyLock::new(|| {
    let policy = parse(&[Source {
        name: "fuzz.toml".into(),
        text: POLICY.into(),
    }])
    .expect("the fuzz policy is valid");
    compile(&policy, &[], 0x5eed)
        .expect("the fuzz policy compiles")
        .image
});

fuzz_target!(|input: &[u8]| {
    let Some((&parser, payload)) = input.split_first() else {
        return;
    };
    let len = payload.len().min(PACKET_BYTES);
    let mut buffer = [0u8; PACKET_BYTES];
    buffer[..len].copy_from_slice(&payload[..len]);
    let packet = Packet::new(&buffer, len).expect("a length within the buffer");
    let generation = Generation::new(IMAGE.as_slice());
    let mut name = [0u8; NAME_BYTES];
    match parser % 4 {
        0 => query(&packet, 0, &generation, &mut name),
        1 => {
            let _ = dns::tcp_messages(&packet, &Plain, |message| {
                query(&packet, message, &generation, &mut name);
                Ok(true)
            });
        }
        2 => response(&packet, &generation, &mut name),
        _ => {
            if let Ok(Some(len)) = tls::server_name(&packet, &mut name, &Plain) {
                assert_matcher_form(&name, len);
                let _ = generation.domain(&Name { bytes: &name, len }, &Plain);
            }
        }
    }
});

fn query(
    packet: &Packet<'_>,
    message: usize,
    generation: &Generation<'_, [u64]>,
    name: &mut [u8; NAME_BYTES],
) {
    let Ok(question) = dns::question(packet, message, false, name, &Plain) else {
        return;
    };
    assert!(question.end <= packet.len(), "a question past the payload");
    assert_matcher_form(name, question.name_len);
    let found = generation
        .domain(
            &Name {
                bytes: name,
                len: question.name_len,
            },
            &Plain,
        )
        .expect("the image is whole");
    assert!(found.start() as usize <= question.name_len);
}

fn response(packet: &Packet<'_>, generation: &Generation<'_, [u64]>, name: &mut [u8; NAME_BYTES]) {
    let mut learned: u16 = 0;
    let walked = dns::walk_response(generation, packet, 0, name, &Plain, |found, _, _| {
        assert_ne!(found.decision.action(), Action::None, "learned for no rule");
        learned += 1;
    });
    match walked {
        Ok(response) => {
            assert_matcher_form(name, response.name_len);
            assert!(learned <= dns::MAX_ANSWERS, "more addresses than answers read");
            assert!(!(response.chain_cut && response.chain.decision.action() != Action::None));
        }
        Err(Stop::Malformed) => {}
        Err(Stop::Fault) => panic!("a lookup left a whole image"),
    }
}

/// Names as the matcher compares them: lowercase, no empty label, no
/// trailing dot, at most [`MAX_NAME_LEN`] bytes.
fn assert_matcher_form(name: &[u8; NAME_BYTES], len: usize) {
    assert!(len <= MAX_NAME_LEN, "a name of {len} bytes");
    let text = &name[..len];
    assert!(!text.iter().any(u8::is_ascii_uppercase), "{text:?} has capitals");
    assert!(
        len == 0 || text.split(|&byte| byte == b'.').all(|label| !label.is_empty()),
        "{text:?} has an empty label"
    );
}
