//! Row counts of every table in a `mysqldump` file (pure).
//!
//! The dump is one `--single-transaction` snapshot, but that transaction belongs to mysqldump:
//! no other session can read inside it, and a `COUNT(*)` beside it would see another moment.
//! The rows the dump holds *are* that snapshot, so they are counted from the dump itself: each
//! `CREATE TABLE` names a table (0 rows until an `INSERT` says more), each `INSERT INTO ... VALUES
//! (...),(...);` statement adds its tuples, on one line (MySQL) or one a line (MariaDB). A tuple starts at a `(` outside quotes at depth 0;
//! quoted strings (`'...'` with backslash escapes, as mysqldump writes them) are skipped.

use std::collections::BTreeMap;
use std::io::BufRead;

/// Rows of each table the dump creates, by table name.
pub fn count_rows(dump: impl BufRead) -> std::io::Result<BTreeMap<String, i64>> {
    let mut rows = BTreeMap::new();
    // The INSERT being read: MariaDB's dump puts `VALUES` at the end of the INSERT line and
    // each tuple on a line of its own, MySQL's puts them all on one line; both end with `;`.
    let mut insert: Option<(String, Values)> = None;
    for line in dump.split(b'\n') {
        let line = line?;
        let rest: &[u8] = match &insert {
            Some(_) => &line,
            None => {
                if let Some(table) = table_after(&line, b"CREATE TABLE `") {
                    rows.entry(table).or_insert(0);
                    continue;
                }
                let Some(table) = table_after(&line, b"INSERT INTO `") else {
                    continue;
                };
                insert = Some((table, Values::default()));
                let start = line
                    .windows(b" VALUES".len())
                    .position(|w| w == b" VALUES")
                    .map_or(line.len(), |i| i + b" VALUES".len());
                &line[start..]
            }
        };
        if let Some((table, values)) = insert.as_mut() {
            let ended = values.read(rest);
            *rows.entry(table.clone()).or_insert(0) += std::mem::take(&mut values.tuples);
            if ended {
                insert = None;
            }
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

/// Where a reading of an INSERT's values stands, across lines.
#[derive(Default)]
struct Values {
    tuples: i64,
    depth: u32,
    quoted: bool,
    escaped: bool,
}

impl Values {
    /// Reads a piece of the values, counting the tuples that start in it; true when the
    /// statement's `;` ended it.
    fn read(&mut self, piece: &[u8]) -> bool {
        for &byte in piece {
            if self.quoted {
                match (self.escaped, byte) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'\'') => self.quoted = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'\'' => self.quoted = true,
                b'(' => {
                    if self.depth == 0 {
                        self.tuples += 1;
                    }
                    self.depth += 1;
                }
                b')' => self.depth = self.depth.saturating_sub(1),
                b';' if self.depth == 0 => return true,
                _ => {}
            }
        }
        false
    }
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
INSERT INTO `markers` VALUES
('m3'),
('m4;(\\'x\\')'),
('m5');
/*!40000 ALTER TABLE `markers` ENABLE KEYS */;
";
        let rows = count_rows(dump.as_bytes()).expect("read");
        assert_eq!(
            rows.into_iter().collect::<Vec<_>>(),
            [
                ("catalogue".to_owned(), 5),
                ("empty".to_owned(), 0),
                ("markers".to_owned(), 5)
            ]
        );
    }
}
