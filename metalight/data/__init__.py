"""Records, the QADataModule base, and one DataModule per dataset (``metalight.data.sources``)."""

from metalight.data.datamodule import QADataModule, RecordDataset
from metalight.data.records import QARecord, RecordBatch, collate_records
from metalight.data.splits import cap_records, label_of, split_records

__all__ = [
    "QADataModule",
    "QARecord",
    "RecordBatch",
    "RecordDataset",
    "cap_records",
    "collate_records",
    "label_of",
    "split_records",
]
