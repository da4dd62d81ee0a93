"""Records, the QADataModule base, and one DataModule per dataset (``metalight.data.sources``)."""

from metalight.data.datamodule import QADataModule, RecordDataset, split_records
from metalight.data.records import QARecord, RecordBatch, collate_records

__all__ = ["QADataModule", "QARecord", "RecordBatch", "RecordDataset", "collate_records", "split_records"]
