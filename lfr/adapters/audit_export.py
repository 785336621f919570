"""The audit export file and its offline verification with only the public key(s).

JSON lines: first one `{"checkpoint": {...}}` line per signed checkpoint, then one audit record per line
(the AuditRecord message as JSON, as before). The last checkpoint is the seal the matcher signed when the
export was made and it covers the last record: records cut from the end leave a checkpoint beyond the new
end; records added after sealing are covered by none; an edited or forged record breaks the hash chain or
the checkpoint over it. Checkpoints come first so that a file cut short keeps the proof of what it held.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from google.protobuf.json_format import MessageToDict, ParseDict, ParseError

from lfr.adapters.grpc import convert
from lfr.domain.audit import AuditRecord, ChainVerification
from lfr.domain.checkpoint import (
    Checkpoint,
    SignatureChecker,
    checkpoint_from_dict,
    checkpoint_to_dict,
    verify_anchored,
)
from lfr.domain.errors import InvalidInput
from lfr.v1 import control_pb2 as pb


def export_lines(records: Sequence[pb.AuditRecord], checkpoints: Sequence[Checkpoint]) -> list[str]:
    lines = [json.dumps({"checkpoint": checkpoint_to_dict(c)}, sort_keys=True) for c in checkpoints]
    lines += [json.dumps(MessageToDict(r, preserving_proto_field_name=True), sort_keys=True) for r in records]
    return lines


def checkpoint_from_proto(c: pb.AuditCheckpoint) -> Checkpoint:
    return checkpoint_from_dict(
        {
            "format": "lfr-audit-checkpoint-v1",
            "key_id": c.key_id,
            "seq": c.seq,
            "chain_hash": c.chain_hash,
            "at": c.at_iso,
            "signature": c.signature,
        }
    )


def parse_export(lines: Iterable[str]) -> tuple[list[AuditRecord], list[Checkpoint]]:
    """Raises InvalidInput naming the first line that is neither a record nor a checkpoint."""
    records: list[AuditRecord] = []
    checkpoints: list[Checkpoint] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            if "checkpoint" in data:
                if not isinstance(data["checkpoint"], dict):
                    raise ValueError("checkpoint is not an object")
                checkpoints.append(checkpoint_from_dict(data["checkpoint"]))
            else:
                records.append(convert.audit_record_from_proto(ParseDict(data, pb.AuditRecord())))
        except (ValueError, ParseError, InvalidInput) as exc:
            raise InvalidInput(f"export line {number} is not an audit record or checkpoint: {exc}") from exc
    return records, checkpoints


def verify_export(lines: Iterable[str], keyring: SignatureChecker) -> ChainVerification:
    try:
        records, checkpoints = parse_export(lines)
    except InvalidInput as exc:
        return ChainVerification(False, 0, None, str(exc))
    partial = bool(records) and records[0].seq > 1
    verdict = verify_anchored(records, checkpoints, keyring, partial=partial)
    if not verdict.ok:
        return verdict
    if not checkpoints:
        return ChainVerification(
            False, verdict.records_checked, 1, "the export holds no signed checkpoint: nothing vouches for it"
        )
    last = records[-1].seq if records else 0
    if verdict.anchored_seq != last:
        return ChainVerification(
            False,
            verdict.records_checked,
            verdict.anchored_seq + 1,
            f"records {verdict.anchored_seq + 1} to {last} are covered by no signed checkpoint: "
            "they were added to the export after it was sealed",
            checkpoints_checked=verdict.checkpoints_checked,
        )
    return verdict
