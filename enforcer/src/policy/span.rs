//! Byte offsets (what the TOML parser reports) to 1-based line and column.

/// Line starts of one source text, so each lookup is a binary search rather
/// than a rescan from the top of the file.
pub(super) struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { text, line_starts }
    }

    /// 1-based line and column of `offset`. The column counts characters,
    /// not bytes, because that is what editors show.
    pub(super) fn position(&self, offset: usize) -> (u32, u32) {
        // The parser may point one past the end (at EOF) and, in theory,
        // inside a multi-byte character; clamp rather than panic on either.
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let line_start = self.line_starts[line];
        let column = self.text[line_start..offset].chars().count() + 1;
        (to_u32(line + 1), to_u32(column))
    }

    pub(super) fn line(&self, offset: usize) -> u32 {
        self.position(offset).0
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::LineIndex;

    #[test]
    fn first_character_is_line_1_column_1() {
        assert_eq!(LineIndex::new("abc").position(0), (1, 1));
        assert_eq!(LineIndex::new("").position(0), (1, 1));
    }

    #[test]
    fn lines_and_columns() {
        let index = LineIndex::new("ab\ncd\n\nef");
        assert_eq!(index.position(1), (1, 2));
        assert_eq!(index.position(2), (1, 3)); // the newline itself
        assert_eq!(index.position(3), (2, 1));
        assert_eq!(index.position(6), (3, 1));
        assert_eq!(index.position(8), (4, 2));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        // "é" and "ü" are two bytes each in UTF-8.
        let text = "x = \"é\"\ny = \"ü\" z";
        let index = LineIndex::new(text);
        let z = text.find('z').unwrap();
        assert_eq!(index.position(z), (2, 9));
    }

    #[test]
    fn crlf_line_endings() {
        let text = "a\r\nbc";
        assert_eq!(LineIndex::new(text).position(4), (2, 2));
    }

    #[test]
    fn out_of_range_offsets_are_clamped() {
        let index = LineIndex::new("ab\nc");
        assert_eq!(index.position(100), (2, 2));
        // Offset 1 is inside "é"; it snaps back to the character's start.
        assert_eq!(LineIndex::new("é").position(1), (1, 1));
    }
}
