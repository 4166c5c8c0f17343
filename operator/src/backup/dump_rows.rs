//! Row counts of every table in a `mysqldump` file (pure).
//!
//! The dump is one `--single-transaction` snapshot, but that transaction belongs to mysqldump:
//! no other session can read inside it, and a `COUNT(*)` beside it would see another moment.
//! The rows the dump holds *are* that snapshot, so they are counted from the dump itself: each
//! `CREATE TABLE` names a table (0 rows until an `INSERT` says more), each `INSERT INTO ... VALUES
//! (...),(...);` line adds its tuples. A tuple starts at a `(` outside quotes at depth 0;
//! quoted strings (`'...'` with backslash escapes, as mysqldump writes them) are skipped.

use std::collections::BTreeMap;
use std::io::BufRead;

/// Rows of each table the dump creates, by table name.
pub fn count_rows(dump: impl BufRead) -> std::io::Result<BTreeMap<String, i64>> {
    let mut rows = BTreeMap::new();
    for line in dump.split(b'\n') {
        let line = line?;
        if let Some(table) = table_after(&line, b"CREATE TABLE `") {
            rows.entry(table).or_insert(0);
        } else if let Some(table) = table_after(&line, b"INSERT INTO `") {
            let start = line
                .windows(b" VALUES ".len())
                .position(|w| w == b" VALUES ")
                .map_or(line.len(), |i| i + b" VALUES ".len());
            *rows.entry(table).or_insert(0) += tuples(&line[start..]);
        }
    }
    Ok(rows)
}

/// The backquoted name after `prefix` at the start of `line`.
fn table_after(line: &[u8], prefix: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(prefix)?;
    let end = rest.iter().position(|b| *b == b'`')?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

/// Top-level tuples in the values of one INSERT.
fn tuples(values: &[u8]) -> i64 {
    let (mut count, mut depth, mut quoted, mut escaped) = (0, 0u32, false, false);
    for &byte in values {
        if quoted {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'\'') => quoted = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'\'' => quoted = true,
            b'(' => {
                if depth == 0 {
                    count += 1;
                }
                depth += 1;
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_counted_per_table_from_the_dumps_inserts() {
        let dump = "\
-- MariaDB dump 10.19
DROP TABLE IF EXISTS `catalogue`;
CREATE TABLE `catalogue` (
  `id` bigint NOT NULL,
  `path` varchar(255) DEFAULT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB;
INSERT INTO `catalogue` VALUES (1,'a (b), c'),(2,'it\\'s (x)'),(3,'back\\\\'),(4,NULL);
INSERT INTO `catalogue` VALUES (5,'),(');
CREATE TABLE `empty` (
  `id` int NOT NULL
);
CREATE TABLE `markers` (`k` varchar(64));
INSERT INTO `markers` VALUES ('m1'),('m2');
";
        let rows = count_rows(dump.as_bytes()).expect("read");
        assert_eq!(
            rows.into_iter().collect::<Vec<_>>(),
            [
                ("catalogue".to_owned(), 5),
                ("empty".to_owned(), 0),
                ("markers".to_owned(), 2)
            ]
        );
    }
}
