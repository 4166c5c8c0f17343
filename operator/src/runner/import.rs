//! Import into the metadata store (DynamoDB API): the inverse of [`super::metadata`]. Each
//! table is created from its exported schema in an empty store, its JSON lines are written back
//! 25 items a request, and the items are counted again.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::Path;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, LocalSecondaryIndex, Projection, ProjectionType, PutRequest, ScalarAttributeType,
    Select, TableDescription, TableStatus, WriteRequest,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Items a BatchWriteItem request may carry.
const BATCH: usize = 25;
/// How long a created table may take to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// A table's keys and secondary indexes, as exported beside its items
/// (`metadata/<table>.schema.json`): enough to create it again.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TableSchema {
    /// Key attributes (of the table and its indexes) and their types (`S`, `N`, `B`).
    pub attribute_definitions: Vec<(String, String)>,
    /// Key attributes and their roles (`HASH`, `RANGE`).
    pub key_schema: Vec<(String, String)>,
    /// Global secondary indexes. Absent in schemas exported before indexes were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub global_secondary_indexes: Vec<IndexSchema>,
    /// Local secondary indexes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_secondary_indexes: Vec<IndexSchema>,
}

/// A secondary index: its name, keys and projection.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IndexSchema {
    /// Index name.
    pub name: String,
    /// Key attributes and their roles.
    pub key_schema: Vec<(String, String)>,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection_type: String,
    /// The attributes an `INCLUDE` projection adds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_key_attributes: Vec<String>,
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
    let found = describe_table(client, table).await?;
    Ok(found.table().map(schema_of).unwrap_or(TableSchema {
        attribute_definitions: Vec::new(),
        key_schema: Vec::new(),
        global_secondary_indexes: Vec::new(),
        local_secondary_indexes: Vec::new(),
    }))
}

/// DescribeTable of `table`.
async fn describe_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput, ImportError> {
    client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| dynamo("describe", table, e))
}

/// A table's description as its exported schema (pure).
fn schema_of(description: &TableDescription) -> TableSchema {
    let keys = |elements: &[KeySchemaElement]| -> Vec<(String, String)> {
        elements
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect()
    };
    let index =
        |name: Option<&str>, key_schema: &[KeySchemaElement], projection: Option<&Projection>| {
            IndexSchema {
                name: name.unwrap_or_default().to_owned(),
                key_schema: keys(key_schema),
                projection_type: projection
                    .and_then(|p| p.projection_type())
                    .map_or("ALL", |t| t.as_str())
                    .to_owned(),
                non_key_attributes: projection
                    .map(|p| p.non_key_attributes().to_vec())
                    .unwrap_or_default(),
            }
        };
    TableSchema {
        attribute_definitions: description
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_owned(),
                    a.attribute_type().as_str().to_owned(),
                )
            })
            .collect(),
        key_schema: keys(description.key_schema()),
        global_secondary_indexes: description
            .global_secondary_indexes()
            .iter()
            .map(|g| index(g.index_name(), g.key_schema(), g.projection()))
            .collect(),
        local_secondary_indexes: description
            .local_secondary_indexes()
            .iter()
            .map(|l| index(l.index_name(), l.key_schema(), l.projection()))
            .collect(),
    }
}

/// What CreateTable needs to make `schema` again (pure).
struct CreateParts {
    definitions: Vec<AttributeDefinition>,
    keys: Vec<KeySchemaElement>,
    global: Vec<GlobalSecondaryIndex>,
    local: Vec<LocalSecondaryIndex>,
}

fn create_parts(schema: &TableSchema) -> Result<CreateParts, String> {
    // One shape for the attribute definitions and every key schema: (name, type or role).
    fn build<T, E: std::fmt::Display>(
        pairs: &[(String, String)],
        make: impl Fn(&str, &str) -> Result<T, E>,
    ) -> Result<Vec<T>, String> {
        pairs
            .iter()
            .map(|(name, kind)| make(name, kind).map_err(|e| e.to_string()))
            .collect()
    }
    let key = |name: &str, role: &str| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(KeyType::from(role))
            .build()
    };
    let projection = |index: &IndexSchema| {
        Projection::builder()
            .projection_type(ProjectionType::from(index.projection_type.as_str()))
            .set_non_key_attributes(
                (!index.non_key_attributes.is_empty()).then(|| index.non_key_attributes.clone()),
            )
            .build()
    };
    // Global and local secondary indexes: the SDK's two builders have the same methods and no
    // trait in common.
    macro_rules! indexes {
        ($indexes:expr, $kind:ty) => {
            $indexes
                .iter()
                .map(|index| {
                    <$kind>::builder()
                        .index_name(&index.name)
                        .set_key_schema(Some(build(&index.key_schema, key)?))
                        .projection(projection(index))
                        .build()
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<_, String>>()?
        };
    }
    Ok(CreateParts {
        definitions: build(&schema.attribute_definitions, |name, kind| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(kind))
                .build()
        })?,
        keys: build(&schema.key_schema, key)?,
        global: indexes!(schema.global_secondary_indexes, GlobalSecondaryIndex),
        local: indexes!(schema.local_secondary_indexes, LocalSecondaryIndex),
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
    let parts = create_parts(schema).map_err(|reason| ImportError::Schema {
        table: table.to_owned(),
        reason,
    })?;
    match client
        .create_table()
        .table_name(table)
        .set_attribute_definitions(Some(parts.definitions))
        .set_key_schema(Some(parts.keys))
        .set_global_secondary_indexes((!parts.global.is_empty()).then_some(parts.global))
        .set_local_secondary_indexes((!parts.local.is_empty()).then_some(parts.local))
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
        let found = describe_table(client, table).await?;
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
    use crate::runner::metadata::item_json;

    #[test]
    fn secondary_indexes_are_exported_and_created_again() {
        let key = |name: &str, role: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(role)
                .build()
                .expect("key")
        };
        let definition = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("definition")
        };
        let projection = |kind: ProjectionType, extra: &[&str]| {
            Projection::builder()
                .projection_type(kind)
                .set_non_key_attributes(
                    (!extra.is_empty()).then(|| extra.iter().map(|a| (*a).to_owned()).collect()),
                )
                .build()
        };
        let described = TableDescription::builder()
            .attribute_definitions(definition("user"))
            .attribute_definitions(definition("path"))
            .attribute_definitions(definition("device"))
            .key_schema(key("user", KeyType::Hash))
            .key_schema(key("path", KeyType::Range))
            .global_secondary_indexes(
                aws_sdk_dynamodb::types::GlobalSecondaryIndexDescription::builder()
                    .index_name("by-device")
                    .key_schema(key("device", KeyType::Hash))
                    .projection(projection(ProjectionType::Include, &["size"]))
                    .build(),
            )
            .local_secondary_indexes(
                aws_sdk_dynamodb::types::LocalSecondaryIndexDescription::builder()
                    .index_name("by-user-device")
                    .key_schema(key("user", KeyType::Hash))
                    .key_schema(key("device", KeyType::Range))
                    .projection(projection(ProjectionType::KeysOnly, &[]))
                    .build(),
            )
            .build();
        let schema = schema_of(&described);
        assert_eq!(
            schema.global_secondary_indexes,
            [IndexSchema {
                name: "by-device".to_owned(),
                key_schema: vec![("device".to_owned(), "HASH".to_owned())],
                projection_type: "INCLUDE".to_owned(),
                non_key_attributes: vec!["size".to_owned()],
            }]
        );
        assert_eq!(
            schema.local_secondary_indexes[0].projection_type,
            "KEYS_ONLY"
        );
        // Through JSON (the schema part) and back into a CreateTable request's pieces.
        let read: TableSchema =
            serde_json::from_str(&serde_json::to_string(&schema).expect("json")).expect("read");
        let parts = create_parts(&read).expect("parts");
        assert_eq!(parts.definitions, described.attribute_definitions());
        assert_eq!(parts.keys, described.key_schema());
        assert_eq!(parts.global[0].index_name(), "by-device");
        assert_eq!(parts.global[0].key_schema(), [key("device", KeyType::Hash)]);
        assert_eq!(
            parts.global[0].projection(),
            Some(&projection(ProjectionType::Include, &["size"]))
        );
        assert_eq!(parts.local[0].index_name(), "by-user-device");
        assert_eq!(parts.local[0].key_schema().len(), 2);
        // A schema written before indexes were exported still reads.
        let old: TableSchema = serde_json::from_str(
            r#"{"attributeDefinitions":[["k","S"]],"keySchema":[["k","HASH"]]}"#,
        )
        .expect("an old schema");
        assert!(old.global_secondary_indexes.is_empty());
    }

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
