//! Kernel symbol addresses from `/proc/kallsyms`, for what BTF does not
//! say: where a kernel function is.

use std::{fs, io};

const KALLSYMS: &str = "/proc/kallsyms";

/// The address of the kernel's text symbol `name`; `None` where it is
/// absent, or where `kptr_restrict` shows every address as 0.
pub(crate) fn text_address(name: &str) -> io::Result<Option<u64>> {
    Ok(find_text(&fs::read_to_string(KALLSYMS)?, name))
}

fn find_text(table: &str, name: &str) -> Option<u64> {
    table.lines().find_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let (address, kind, symbol) = (fields.next()?, fields.next()?, fields.next()?);
        let text = kind.eq_ignore_ascii_case("t");
        let address = u64::from_str_radix(address, 16).ok()?;
        (text && symbol == name && address != 0).then_some(address)
    })
}

#[cfg(test)]
mod tests {
    use super::find_text;

    #[test]
    fn finds_a_text_symbol_and_nothing_else() {
        let table = "ffffffff81711b20 t __fput_deferred\n\
                     ffffffff81712050 t ____fput\n\
                     ffffffff82000000 d ____fput_data\n\
                     ffffffffc0001000 t helper\t[module]\n";
        assert_eq!(find_text(table, "____fput"), Some(0xffff_ffff_8171_2050));
        assert_eq!(find_text(table, "helper"), Some(0xffff_ffff_c000_1000));
        assert_eq!(find_text(table, "____fput_data"), None);
        assert_eq!(find_text(table, "missing"), None);
    }

    #[test]
    fn a_restricted_table_has_no_addresses() {
        assert_eq!(find_text("0000000000000000 t ____fput\n", "____fput"), None);
    }
}
