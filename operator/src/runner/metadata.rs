//! Export of the metadata store (DynamoDB API): every table, scanned page by page, one item a
//! line in DynamoDB's own JSON encoding (`{"k":{"S":"v"}}`), so a restore can put each line
//! back unchanged.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};

/// Why the export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// ListTables failed.
    #[error("list tables: {0}")]
    List(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Scan failed.
    #[error("scan {table}: {source}")]
    Scan {
        /// The table.
        table: String,
        /// The SDK's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// DescribeTable failed.
    #[error("describe: {0}")]
    Describe(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The export file could not be written.
    #[error("write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// One exported table.
pub struct Exported {
    /// Table name.
    pub name: String,
    /// The JSON-lines file.
    pub path: PathBuf,
    /// The table's keys ([`super::import::TableSchema`] as JSON), to create it again.
    pub schema_path: PathBuf,
    /// Items written.
    pub rows: i64,
}

/// A DynamoDB client for the metadata store.
pub async fn client(
    endpoint: &str,
    region: &str,
    credentials: Option<aws_sdk_s3::config::Credentials>,
) -> aws_sdk_dynamodb::Client {
    super::wait_for_endpoint("the metadata store", endpoint).await;
    let config = super::sdk_config(region, Some(endpoint), credentials).await;
    aws_sdk_dynamodb::Client::new(&config)
}

/// Exports every table whose name starts with `prefix` (all tables without one) into `dir`,
/// in name order.
pub async fn export_all(
    client: &aws_sdk_dynamodb::Client,
    prefix: Option<&str>,
    dir: &Path,
) -> Result<Vec<Exported>, ExportError> {
    let mut names = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let page = client
            .list_tables()
            .set_exclusive_start_table_name(start.take())
            .send()
            .await
            .map_err(|e| ExportError::List(Box::new(e)))?;
        names.extend(page.table_names().iter().cloned());
        match page.last_evaluated_table_name() {
            Some(last) => start = Some(last.to_owned()),
            None => break,
        }
    }
    names.retain(|name| prefix.is_none_or(|p| name.starts_with(p)));
    names.sort();
    let mut exported = Vec::new();
    for name in names {
        exported.push(export_table(client, &name, dir).await?);
    }
    Ok(exported)
}

async fn export_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    dir: &Path,
) -> Result<Exported, ExportError> {
    let path = dir.join(format!("{table}.jsonl"));
    let write_error = |source| ExportError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).map_err(write_error)?);
    let mut rows = 0;
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            // Strongly consistent: every write acknowledged before the scan is in the export.
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| ExportError::Scan {
                table: table.to_owned(),
                source: Box::new(e),
            })?;
        for item in page.items() {
            let line = item_json(item).to_string();
            writeln!(out, "{line}").map_err(write_error)?;
            rows += 1;
        }
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => break,
        }
    }
    out.flush().map_err(write_error)?;
    let schema = super::import::describe(client, table)
        .await
        .map_err(|e| ExportError::Describe(Box::new(e)))?;
    let schema_path = dir.join(format!("{table}.schema.json"));
    std::fs::write(
        &schema_path,
        serde_json::to_vec(&schema).unwrap_or_default(),
    )
    .map_err(|source| ExportError::Write {
        path: schema_path.display().to_string(),
        source,
    })?;
    Ok(Exported {
        name: table.to_owned(),
        path,
        schema_path,
        rows,
    })
}

/// An item in DynamoDB JSON, attributes in name order (so an export is reproducible).
pub(crate) fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    Value::Object(
        names
            .into_iter()
            .map(|name| (name.clone(), attribute_json(&item[name])))
            .collect(),
    )
}

fn attribute_json(value: &AttributeValue) -> Value {
    let typed = |kind: &str, v: Value| {
        let mut map = Map::new();
        map.insert(kind.to_owned(), v);
        Value::Object(map)
    };
    let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
    let blob = |b: &aws_sdk_dynamodb::primitives::Blob| {
        Value::String(aws_smithy_types::base64::encode(b.as_ref()))
    };
    match value {
        AttributeValue::S(s) => typed("S", Value::String(s.clone())),
        AttributeValue::N(n) => typed("N", Value::String(n.clone())),
        AttributeValue::B(b) => typed("B", blob(b)),
        AttributeValue::Bool(b) => typed("BOOL", Value::Bool(*b)),
        AttributeValue::Null(n) => typed("NULL", Value::Bool(*n)),
        AttributeValue::Ss(v) => typed("SS", strings(v)),
        AttributeValue::Ns(v) => typed("NS", strings(v)),
        AttributeValue::Bs(v) => typed("BS", Value::Array(v.iter().map(blob).collect())),
        AttributeValue::L(v) => typed("L", Value::Array(v.iter().map(attribute_json).collect())),
        AttributeValue::M(m) => typed("M", item_json(m)),
        // A type newer than this SDK: keep the line parseable and say so.
        _ => typed("UNKNOWN", Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_dynamodb_json_with_sorted_attributes() {
        let item = HashMap::from([
            ("v".to_owned(), AttributeValue::S("hello".to_owned())),
            ("k".to_owned(), AttributeValue::S("marker-1".to_owned())),
            ("n".to_owned(), AttributeValue::N("42".to_owned())),
            (
                "m".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "b".to_owned(),
                    AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b"hi".to_vec())),
                )])),
            ),
            (
                "l".to_owned(),
                AttributeValue::L(vec![AttributeValue::Bool(true), AttributeValue::Null(true)]),
            ),
        ]);
        assert_eq!(
            item_json(&item).to_string(),
            r#"{"k":{"S":"marker-1"},"l":{"L":[{"BOOL":true},{"NULL":true}]},"m":{"M":{"b":{"B":"aGk="}}},"n":{"N":"42"},"v":{"S":"hello"}}"#
        );
    }
}
