//! Import into the metadata store (DynamoDB API): the inverse of [`super::metadata`]. Each
//! table is created from its exported schema in an empty store, its JSON lines are written back
//! 25 items a request, and the items are counted again.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::Path;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, Select, TableStatus, WriteRequest,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Items a BatchWriteItem request may carry.
const BATCH: usize = 25;
/// How long a created table may take to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// A table's keys, as exported beside its items (`metadata/<table>.schema.json`): enough to
/// create it again.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TableSchema {
    /// Key attributes and their types (`S`, `N`, `B`).
    pub attribute_definitions: Vec<(String, String)>,
    /// Key attributes and their roles (`HASH`, `RANGE`).
    pub key_schema: Vec<(String, String)>,
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A DynamoDB request failed.
    #[error("{action} {table}: {source}")]
    Dynamo {
        /// What was being done.
        action: &'static str,
        /// The table.
        table: String,
        /// The SDK's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The table exists already: a restore never writes over live data.
    #[error("table {0} already exists: a restore only fills an empty metadata store")]
    Exists(String),
    /// The table did not become ACTIVE in time.
    #[error("table {0} did not become ACTIVE within 120 s")]
    NotActive(String),
    /// A line of the export is not an item.
    #[error("{path} line {line}: {reason}")]
    BadLine {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The export could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The schema could not be turned into a request.
    #[error("schema of {table}: {reason}")]
    Schema {
        /// The table.
        table: String,
        /// What is wrong.
        reason: String,
    },
}

/// The schema of `table`, from DescribeTable.
pub async fn describe(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<TableSchema, ImportError> {
    let found = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| dynamo("describe", table, e))?;
    let description = found.table();
    Ok(TableSchema {
        attribute_definitions: description
            .map(|t| t.attribute_definitions())
            .unwrap_or_default()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_owned(),
                    a.attribute_type().as_str().to_owned(),
                )
            })
            .collect(),
        key_schema: description
            .map(|t| t.key_schema())
            .unwrap_or_default()
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect(),
    })
}

/// Creates `table` from `schema` (refusing one that exists), fills it from the JSON lines at
/// `items`, and returns the number of items the table holds afterwards.
pub async fn import_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    schema: &TableSchema,
    items: &Path,
) -> Result<i64, ImportError> {
    create(client, table, schema).await?;
    let path = items.display().to_string();
    let file = std::fs::File::open(items).map_err(|source| ImportError::Read {
        path: path.clone(),
        source,
    })?;
    let mut batch = Vec::with_capacity(BATCH);
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| ImportError::Read {
            path: path.clone(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let item = parse_item(&line).map_err(|reason| ImportError::BadLine {
            path: path.clone(),
            line: index + 1,
            reason,
        })?;
        batch.push(item);
        if batch.len() == BATCH {
            write_batch(client, table, std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        write_batch(client, table, batch).await?;
    }
    count(client, table).await
}

/// Items in `table` (a strongly consistent counting scan).
pub async fn count(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<i64, ImportError> {
    let mut total = 0;
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .select(Select::Count)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| dynamo("count", table, e))?;
        total += i64::from(page.count());
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return Ok(total),
        }
    }
}

async fn create(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    schema: &TableSchema,
) -> Result<(), ImportError> {
    let bad = |reason: String| ImportError::Schema {
        table: table.to_owned(),
        reason,
    };
    let definitions = schema
        .attribute_definitions
        .iter()
        .map(|(name, kind)| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
                .map_err(|e| bad(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let keys = schema
        .key_schema
        .iter()
        .map(|(name, role)| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::from(role.as_str()))
                .build()
                .map_err(|e| bad(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    match client
        .create_table()
        .table_name(table)
        .set_attribute_definitions(Some(definitions))
        .set_key_schema(Some(keys))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            return Err(ImportError::Exists(table.to_owned()));
        }
        Err(e) => return Err(dynamo("create", table, e)),
    }
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let found = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| dynamo("describe", table, e))?;
        if found.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ImportError::NotActive(table.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes `items`, sending back what the store left unprocessed (it may throttle) until none is.
async fn write_batch(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<HashMap<String, AttributeValue>>,
) -> Result<(), ImportError> {
    let mut requests = items
        .into_iter()
        .map(|item| {
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|put| WriteRequest::builder().put_request(put).build())
                .map_err(|e| dynamo("build a put for", table, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut pause = Duration::from_millis(50);
    while !requests.is_empty() {
        let answer = client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await
            .map_err(|e| dynamo("write", table, e))?;
        requests = answer
            .unprocessed_items()
            .and_then(|left| left.get(table))
            .cloned()
            .unwrap_or_default();
        if !requests.is_empty() {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
    Ok(())
}

fn dynamo(
    action: &'static str,
    table: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> ImportError {
    ImportError::Dynamo {
        action,
        table: table.to_owned(),
        source: Box::new(source),
    }
}

/// One exported line back into an item.
pub(crate) fn parse_item(line: &str) -> Result<HashMap<String, AttributeValue>, String> {
    match serde_json::from_str::<Value>(line).map_err(|e| e.to_string())? {
        Value::Object(map) => map
            .into_iter()
            .map(|(name, value)| Ok((name, attribute(&value)?)))
            .collect(),
        _ => Err("not a JSON object".to_owned()),
    }
}

fn attribute(value: &Value) -> Result<AttributeValue, String> {
    let Value::Object(map) = value else {
        return Err(format!("not a typed attribute: {value}"));
    };
    let mut entries = map.iter();
    let (Some((kind, inner)), None) = (entries.next(), entries.next()) else {
        return Err(format!("not one typed attribute: {value}"));
    };
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{kind}: not a string: {v}"))
    };
    let list = |v: &Value| {
        v.as_array()
            .cloned()
            .ok_or_else(|| format!("{kind}: not a list: {v}"))
    };
    let blob = |v: &Value| {
        let encoded = text(v)?;
        aws_smithy_types::base64::decode(&encoded)
            .map(aws_sdk_dynamodb::primitives::Blob::new)
            .map_err(|e| format!("{kind}: {e}"))
    };
    let flag = |v: &Value| {
        v.as_bool()
            .ok_or_else(|| format!("{kind}: not a bool: {v}"))
    };
    Ok(match kind.as_str() {
        "S" => AttributeValue::S(text(inner)?),
        "N" => AttributeValue::N(text(inner)?),
        "B" => AttributeValue::B(blob(inner)?),
        "BOOL" => AttributeValue::Bool(flag(inner)?),
        "NULL" => AttributeValue::Null(flag(inner)?),
        "SS" => AttributeValue::Ss(list(inner)?.iter().map(text).collect::<Result<_, _>>()?),
        "NS" => AttributeValue::Ns(list(inner)?.iter().map(text).collect::<Result<_, _>>()?),
        "BS" => AttributeValue::Bs(list(inner)?.iter().map(blob).collect::<Result<_, _>>()?),
        "L" => AttributeValue::L(
            list(inner)?
                .iter()
                .map(attribute)
                .collect::<Result<_, _>>()?,
        ),
        "M" => match inner {
            Value::Object(map) => AttributeValue::M(
                map.iter()
                    .map(|(name, v)| Ok((name.clone(), attribute(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            _ => return Err(format!("M: not a map: {inner}")),
        },
        other => return Err(format!("unknown attribute type {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::metadata::item_json;

    #[test]
    fn an_exported_item_reads_back_as_the_same_item() {
        let line = r#"{"k":{"S":"marker-1"},"l":{"L":[{"BOOL":true},{"NULL":true}]},"m":{"M":{"b":{"B":"aGk="}}},"n":{"N":"42"},"s":{"SS":["a","b"]},"v":{"S":"hello"}}"#;
        let item = parse_item(line).expect("parses");
        assert_eq!(item_json(&item).to_string(), line);
    }

    #[test]
    fn a_line_that_is_no_item_is_refused_with_its_reason() {
        assert!(parse_item("[1]").is_err());
        assert_eq!(
            parse_item(r#"{"k":{"X":"1"}}"#),
            Err("unknown attribute type X".to_owned())
        );
        assert!(parse_item(r#"{"k":{"S":"1","N":"2"}}"#).is_err());
    }
}
