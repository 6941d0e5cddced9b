//! Rows bound as one JSON array per statement, cut to a size that crosses
//! the network in one write.
//!
//! sqlx does not set TCP_NODELAY on PostgreSQL connections, and over TLS
//! (sqlx's default `sslmode=prefer` takes it whenever the server offers it)
//! a statement larger than one TLS record (16 KiB) goes out as two writes.
//! Nagle's algorithm holds the second until the server acknowledges the
//! first, and the server delays that acknowledgement by up to 40 ms, waiting
//! for the rest of the statement. A burst's group commit (hundreds of event
//! bodies in one INSERT) stalled on this at every group: about 250
//! completions/s with the machine 80% idle (`strace` showed the 43 ms gap).
//! Statements kept under `MAX_PG_BYTES` never wait.
//!
//! SQLite has no socket, but its arrays are cut too, under
//! `MAX_SQLITE_BYTES`: a buffer over 84 KiB is a large object to mimalloc,
//! in a 4 MiB page of its own that is mapped from the OS, faulted in zeroed
//! and unmapped for each group (see `crate::alloc`), and sqlx copies every
//! argument once more. A statement more per 64 KiB costs less than that.

use serde::Serialize;

use super::Backend;

/// Largest JSON argument sent to PostgreSQL in one statement: with the SQL
/// text and the other arguments, the statement still fits one TLS record.
const MAX_PG_BYTES: usize = 12 * 1024;
/// Largest JSON argument of one SQLite statement: with its buffer's one
/// spare byte, under mimalloc's largest medium object (about 84 KiB).
pub const MAX_SQLITE_BYTES: usize = 64 * 1024;

/// PostgreSQL: the `id` of every row of the JSON array `$1` as a condition
/// on `t.id`, for statements that join `json_to_recordset($1)` to
/// `transfers AS t` (see `ending::END_MANY_POSTGRES`).
macro_rules! ids_of_rows {
    () => {
        "t.id = ANY(ARRAY(SELECT r->>'id' FROM json_array_elements($1::json) AS r))"
    };
}
pub(super) use ids_of_rows;

/// SQLite: the text that the row `c.value` of a [`blob_batches`] array
/// names by its span `$field` in the BLOB `$blob`, or NULL for a `null` span.
macro_rules! text_of {
    ($blob:literal, $field:literal) => {
        concat!(
            "CAST(substr(",
            $blob,
            ", json_extract(c.value, '$.",
            $field,
            "[0]'), json_extract(c.value, '$.",
            $field,
            "[1]')) AS TEXT)"
        )
    };
}
pub(crate) use text_of;

/// On SQLite, a statement that fails unless the statement just before it
/// changed `$1` rows (`changes()`), with `$message` in its error. It goes
/// between the statements of one hand-off (see `Conn::with_next`), where
/// the caller cannot look at a count before the COMMIT: SQLite stops at the
/// failure, and the COMMIT behind never runs. A bad JSON path is an error
/// SQLite raises from a query, and its message quotes the path.
macro_rules! changed_exactly {
    ($message:literal) => {
        concat!(
            "SELECT json_extract('{}', CASE WHEN changes() = $1 THEN '$' ELSE '",
            $message,
            "' END)"
        )
    };
}
pub(super) use changed_exactly;

/// `rows` as JSON arrays, each small enough for one segment on PostgreSQL
/// and a medium object to the allocator on SQLite.
///
/// Rows are serialized into one reused buffer (no string per row), and an
/// array's buffer is reserved up front for the rows left at its first
/// row's size, within the limit: a burst's
/// group of endings is hundreds of event bodies, and growing one string
/// by doubling copied it over and over, each copy into fresh pages (3% of
/// the bridge's CPU in a 10,000-completion burst, page faults included).
pub fn json_arrays<T: Serialize>(backend: Backend, rows: &[T]) -> Vec<String> {
    counted_json_arrays(backend, rows)
        .into_iter()
        .map(|(array, _)| array)
        .collect()
}

/// As [`json_arrays`], each array with the number of rows in it: for a
/// statement that checks it changed every row of its array.
pub fn counted_json_arrays<T: Serialize>(backend: Backend, rows: &[T]) -> Vec<(String, usize)> {
    let limit = match backend {
        Backend::Sqlite => MAX_SQLITE_BYTES,
        Backend::Postgres => MAX_PG_BYTES,
    };
    let mut arrays = Vec::new();
    let mut count = 0;
    let mut current = Vec::new();
    let mut row = Vec::new();
    for (i, item) in rows.iter().enumerate() {
        row.clear();
        serde_json::to_writer(&mut row, item).expect("rows serialize");
        // With this row, the array grows by a comma and the row, and ends
        // with a closing bracket.
        if !current.is_empty() && current.len() + 1 + row.len() + 1 > limit {
            arrays.push((close(std::mem::take(&mut current)), count));
            count = 0;
        }
        if current.is_empty() {
            // Room for the rows left at this row's size, within the limit.
            let estimate = (rows.len() - i).saturating_mul(row.len() + 1) + 2;
            current.reserve(estimate.min(limit.saturating_add(1)));
            current.push(b'[');
        } else {
            current.push(b',');
        }
        current.extend_from_slice(&row);
        count += 1;
    }
    if !current.is_empty() {
        arrays.push((close(current), count));
    }
    arrays
}

/// Where one text of a row sits in its batch's BLOB, as SQLite's
/// `substr(blob, at, len)` takes it: `[at, len]`, `at` 1-based (a BLOB's
/// `substr` counts bytes, so no scan), or `null` for no text, which
/// `substr` turns into NULL.
pub type Span = Option<[usize; 2]>;

/// Rows for a SQLite statement that takes its long texts beside its JSON
/// array, not in it: each row's short fields and [`Span`]s in the array,
/// its texts side by side in one BLOB. Nothing is escaped into the array by
/// serde_json, nor parsed and unescaped out of it again by SQLite (the
/// thirty-first round, docs/perf-rounds.md, measured it on the actions).
///
/// `texts` appends an item's texts to the BLOB and gives each one's length
/// (`None`: no text); `row` makes its row from the spans. Each BLOB stays
/// under [`MAX_SQLITE_BYTES`] (an item larger alone in its own), reserved
/// up front for the items left at the size of the first, for the reason
/// [`json_arrays`] reserves. Gives (array, BLOB, rows) per statement.
pub fn blob_batches<'a, T, R: Serialize, const N: usize>(
    items: &'a [T],
    mut texts: impl FnMut(&'a T, &mut Vec<u8>) -> [Option<usize>; N],
    mut row: impl FnMut(&'a T, [Span; N]) -> R,
) -> Vec<(String, Vec<u8>, usize)> {
    let room = |left: usize, size: usize| left.saturating_mul(size).min(MAX_SQLITE_BYTES);
    let mut batches = Vec::new();
    let (mut rows, mut blob) = (Vec::new(), Vec::new());
    for (i, item) in items.iter().enumerate() {
        let start = blob.len();
        let lengths = texts(item, &mut blob);
        let size = blob.len() - start;
        let mut at = start + 1;
        if rows.is_empty() {
            blob.reserve(room(items.len() - i, size).saturating_sub(size));
        } else if blob.len() > MAX_SQLITE_BYTES {
            // Cut before this item: its texts open the next BLOB.
            let mut next = Vec::with_capacity(room(items.len() - i, size));
            next.extend_from_slice(&blob[start..]);
            blob.truncate(start);
            let array = serde_json::to_string(&rows).expect("rows serialize");
            batches.push((array, std::mem::replace(&mut blob, next), rows.len()));
            rows.clear();
            at = 1;
        }
        let spans = lengths.map(|length| {
            length.map(|len| {
                at += len;
                [at - len, len]
            })
        });
        rows.push(row(item, spans));
    }
    if !rows.is_empty() {
        let array = serde_json::to_string(&rows).expect("rows serialize");
        batches.push((array, blob, rows.len()));
    }
    batches
}

/// An array's buffer, `]` appended, as text.
fn close(mut array: Vec<u8>) -> String {
    array.push(b']');
    String::from_utf8(array).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_stay_under_the_limit_and_keep_every_row_in_order() {
        let rows: Vec<String> = (0..500).map(|i| format!("{i:0>100}")).collect();
        let arrays = json_arrays(Backend::Postgres, &rows);
        assert!(arrays.len() > 1, "{} arrays", arrays.len());
        assert!(arrays.iter().all(|a| a.len() <= MAX_PG_BYTES));
        let back: Vec<String> = arrays
            .iter()
            .flat_map(|a| serde_json::from_str::<Vec<String>>(a).unwrap())
            .collect();
        assert_eq!(back, rows);
        assert_eq!(json_arrays(Backend::Sqlite, &rows).len(), 1);
        assert!(json_arrays::<String>(Backend::Postgres, &[]).is_empty());
    }

    #[test]
    fn sqlite_arrays_stay_medium_sized_and_count_their_rows() {
        // A burst's group of actions: 256 event bodies of about 1 KiB.
        let rows: Vec<String> = (0..256).map(|i| format!("{i:0>1000}")).collect();
        let arrays = counted_json_arrays(Backend::Sqlite, &rows);
        assert!(arrays.len() > 1, "{} arrays", arrays.len());
        assert!(arrays.iter().all(|(a, _)| a.len() <= MAX_SQLITE_BYTES));
        let mut back = Vec::new();
        for (array, count) in &arrays {
            let items: Vec<String> = serde_json::from_str(array).unwrap();
            assert_eq!(items.len(), *count);
            back.extend(items);
        }
        assert_eq!(back, rows);
    }

    /// Items of two texts each (one missing in every third), one larger
    /// than a BLOB: each BLOB under the limit unless it holds that item
    /// alone, every row's spans name its own texts, `null` the missing one,
    /// and the counts add up to the items in order.
    #[test]
    fn blob_batches_cut_under_the_limit_and_name_each_text() {
        let items: Vec<(String, Option<String>)> = (0..300)
            .map(|i| {
                let long = if i == 150 { 70_000 } else { i % 17 * 40 };
                ("é".repeat(long), (i % 3 > 0).then(|| format!("{i}")))
            })
            .collect();
        let texts = |item: &(String, Option<String>), blob: &mut Vec<u8>| {
            [Some(item.0.as_str()), item.1.as_deref()].map(|text| {
                blob.extend_from_slice(text?.as_bytes());
                Some(text?.len())
            })
        };
        let batches = blob_batches(&items, texts, |_, spans: [Span; 2]| spans);
        assert!(batches.len() > 2, "{} batches", batches.len());
        let mut seen = 0;
        for (array, blob, count) in &batches {
            let rows: Vec<[Span; 2]> = serde_json::from_str(array).unwrap();
            assert_eq!(rows.len(), *count);
            assert!(blob.len() <= MAX_SQLITE_BYTES || rows.len() == 1);
            for spans in rows {
                let item = &items[seen];
                let text = |span: Span| span.map(|[at, len]| &blob[at - 1..at - 1 + len]);
                assert_eq!(text(spans[0]), Some(item.0.as_bytes()));
                assert_eq!(text(spans[1]), item.1.as_ref().map(|s| s.as_bytes()));
                seen += 1;
            }
        }
        assert_eq!(seen, items.len());
    }

    proptest::proptest! {
        /// Greedy packing: every row once, in order; an array over the
        /// limit holds one row only; and the next array's first row would
        /// not have fit in the array before it.
        #[test]
        fn arrays_pack_rows_greedily(sizes in proptest::collection::vec(0usize..6000, 0..40)) {
            let rows: Vec<String> = sizes.iter().map(|n| "x".repeat(*n)).collect();
            let arrays = json_arrays(Backend::Postgres, &rows);
            let parsed: Vec<Vec<String>> = arrays
                .iter()
                .map(|a| serde_json::from_str(a).unwrap())
                .collect();
            proptest::prop_assert_eq!(parsed.concat(), rows.clone());
            for (array, items) in arrays.iter().zip(&parsed) {
                proptest::prop_assert!(array.len() <= MAX_PG_BYTES || items.len() == 1);
            }
            for (before, next) in arrays.iter().zip(parsed.iter().skip(1)) {
                let first = serde_json::to_string(&next[0]).unwrap();
                // `before` with the row would be `before` (its closing
                // bracket standing in for the comma), the row, a new bracket.
                proptest::prop_assert!(before.len() + first.len() + 1 > MAX_PG_BYTES);
            }
        }
    }
}
