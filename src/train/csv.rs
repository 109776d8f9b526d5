//! Reading a labelled data set from CSV text: numeric features and an integer class label in
//! a chosen column, with errors that name the line and column of the first bad field. Parsing
//! only; the caller reads the file (this module does no I/O).

use std::str::FromStr;

use super::TrainError;
use super::dataset::Dataset;

/// Largest class id accepted (labels are 0..MAX_CLASSES).
pub const MAX_CLASSES: usize = 1000;

/// Which column holds the label (N counted from 1, or the last column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LabelColumn {
    /// The last column.
    #[default]
    Last,
    /// Column N, counted from 1.
    Number(usize),
}

impl FromStr for LabelColumn {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("last") {
            return Ok(LabelColumn::Last);
        }
        match text.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(LabelColumn::Number(n)),
            _ => Err(format!(
                "label column '{text}' must be a column number counted from 1, or 'last'"
            )),
        }
    }
}

fn is_number(field: &str) -> bool {
    field.trim().parse::<f32>().is_ok()
}

/// Parses a class label: a non-negative integer below MAX_CLASSES ("3" or "3.0").
fn parse_label(field: &str) -> Result<u32, &'static str> {
    let field = field.trim();
    if let Ok(value) = field.parse::<u64>() {
        return usize::try_from(value)
            .ok()
            .filter(|&v| v < MAX_CLASSES)
            .map(|v| v as u32)
            .ok_or("is not a known class id (labels must be integers 0..1000)");
    }
    match field.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 && (0.0..MAX_CLASSES as f64).contains(&v) => Ok(v as u32),
        Ok(v) if v.fract() == 0.0 => {
            Err("is not a known class id (labels must be integers 0..1000)")
        }
        Ok(_) => Err("is not an integer class id"),
        Err(_) => Err("is not a number (labels must be integers 0..1000)"),
    }
}

/// Parses CSV text (comma-separated, no quoting; blank lines skipped; a first line with no
/// numeric field is taken as a header). `source` names the input in error messages.
pub fn parse(text: &str, label: LabelColumn, source: &str) -> Result<Dataset, TrainError> {
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut width: Option<usize> = None;
    let mut seen_first = false;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = raw.split(',').collect();
        if !seen_first {
            seen_first = true;
            if fields.iter().all(|f| !is_number(f)) {
                continue; // header
            }
        }
        let columns = *width.get_or_insert(fields.len());
        if fields.len() != columns {
            return Err(TrainError::CsvRagged {
                file: source.to_string(),
                line,
                expected: columns,
                found: fields.len(),
            });
        }
        if columns < 2 {
            return Err(TrainError::CsvTooNarrow {
                file: source.to_string(),
                columns,
            });
        }
        let label_index = match label {
            LabelColumn::Last => columns - 1,
            LabelColumn::Number(n) if n <= columns => n - 1,
            LabelColumn::Number(n) => {
                return Err(TrainError::CsvLabelColumn {
                    file: source.to_string(),
                    column: n,
                    columns,
                });
            }
        };
        for (column_index, field) in fields.iter().enumerate() {
            let column = column_index + 1;
            if column_index == label_index {
                let value = parse_label(field).map_err(|reason| TrainError::CsvBadLabel {
                    file: source.to_string(),
                    line,
                    column,
                    text: field.trim().to_string(),
                    reason,
                })?;
                labels.push(value);
            } else {
                let value = field
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| TrainError::CsvNotANumber {
                        file: source.to_string(),
                        line,
                        column,
                        text: field.trim().to_string(),
                    })?;
                features.push(value);
            }
        }
    }
    let Some(columns) = width else {
        return Err(TrainError::CsvEmpty {
            file: source.to_string(),
        });
    };
    let classes = labels.iter().copied().max().map_or(0, |m| m as usize + 1);
    if classes < 2 {
        return Err(TrainError::BadDataset(format!(
            "{source}: every row has label {}; training needs at least two classes",
            labels.first().copied().unwrap_or(0)
        )));
    }
    Dataset::new(features, labels, columns - 1, classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str, label: LabelColumn) -> String {
        parse(text, label, "test.csv").unwrap_err().to_string()
    }

    #[test]
    fn parses_label_last_or_numbered_with_header_and_blank_lines() {
        let data = parse("a,b,label\n1,2,0\n\n3,4.5,1\n", LabelColumn::Last, "t").unwrap();
        assert_eq!((data.len(), data.width(), data.classes()), (2, 2, 2));
        assert_eq!(data.features(), &[1.0, 2.0, 3.0, 4.5]);
        assert_eq!(data.labels(), &[0, 1]);
        let first = parse("2,1.5,7\n0,0,8\n", LabelColumn::Number(1), "t").unwrap();
        assert_eq!(first.labels(), &[2, 0]);
        assert_eq!(first.features(), &[1.5, 7.0, 0.0, 8.0]);
        assert_eq!(first.classes(), 3);
        assert_eq!(
            parse("1,2.0\n1,1\n", LabelColumn::Last, "t")
                .unwrap()
                .labels(),
            &[2, 1]
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let ragged = error("1,2,0\n1,2\n", LabelColumn::Last);
        assert!(
            ragged.contains("line 2") && ragged.contains("2 fields") && ragged.contains("3"),
            "{ragged}"
        );
        let nan = error("1,2,0\n1,x,1\n", LabelColumn::Last);
        assert!(
            nan.contains("line 2, column 2") && nan.contains("'x'"),
            "{nan}"
        );
        let inf = error("1,inf,0\n1,2,1\n", LabelColumn::Last);
        assert!(inf.contains("line 1, column 2"), "{inf}");
        let fractional = error("1,2,0.5\n", LabelColumn::Last);
        assert!(
            fractional.contains("line 1, column 3") && fractional.contains("not an integer"),
            "{fractional}"
        );
        let unknown = error("1,2,cat\n", LabelColumn::Last);
        assert!(
            unknown.contains("'cat'") && unknown.contains("column 3"),
            "{unknown}"
        );
        let negative = error("1,2,-1\n1,1,1\n", LabelColumn::Last);
        assert!(negative.contains("class id"), "{negative}");
        let huge = error("1,2,5000\n", LabelColumn::Last);
        assert!(huge.contains("known class"), "{huge}");
        let column = error("1,2,0\n", LabelColumn::Number(9));
        assert!(
            column.contains("column 9") && column.contains("3 columns"),
            "{column}"
        );
        assert!(error("\n\n", LabelColumn::Last).contains("no data rows"));
        assert!(error("1,0\n2,0\n", LabelColumn::Last).contains("two classes"));
        assert!("0".parse::<LabelColumn>().is_err());
        assert_eq!("last".parse::<LabelColumn>(), Ok(LabelColumn::Last));
        assert_eq!("3".parse::<LabelColumn>(), Ok(LabelColumn::Number(3)));
    }
}
