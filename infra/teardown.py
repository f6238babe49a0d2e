#!/usr/bin/env python3
"""Delete a hitl stack; with --purge, also the events bucket and every record in it.

Usage::

    python infra/teardown.py STACK              # the API, function and roles go; the bucket stays
    python infra/teardown.py STACK --purge      # ... and the bucket, all versions included
    python infra/teardown.py STACK --purge --bucket NAME   # a bucket kept by an earlier teardown

The bucket is kept by default (DeletionPolicy: Retain in template.yaml) because decisions are
audit records: deleting them is a separate, explicit step. --purge asks for the bucket name
to be typed back unless --yes is given. Uses boto3 (the AWS CLI is not needed).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _outputs(cfn: Any, stack: str) -> dict[str, str] | None:
    """The stack's outputs, or None if there is no such stack."""
    from botocore.exceptions import ClientError

    try:
        found = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}


def purge_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker, then the bucket; returns the count.

    The bucket policy denies deleting records to everyone, so it goes first (asked for by
    the operator who typed the bucket's name).
    """
    s3.delete_bucket_policy(Bucket=bucket)
    deleted = 0
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
    for page in pages:
        keys = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if keys:  # at most 1,000 per page, the DeleteObjects limit
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    s3.delete_bucket(Bucket=bucket)
    return deleted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stack")
    parser.add_argument("--purge", action="store_true", help="also delete the bucket and data")
    parser.add_argument("--yes", action="store_true", help="do not ask before purging")
    parser.add_argument("--bucket", help="the bucket to purge, if the stack is already gone")
    parser.add_argument("--region")
    args = parser.parse_args(argv)

    import boto3

    cfn = boto3.client("cloudformation", region_name=args.region)
    outputs = _outputs(cfn, args.stack)
    if outputs is None and not (args.purge and args.bucket):
        raise SystemExit(
            f"teardown: no stack named {args.stack!r} in this account and region (deleted "
            "already? its bucket is kept: pass --purge --bucket NAME to delete it)"
        )
    bucket = args.bucket or (outputs or {}).get("BucketName")
    if args.purge and bucket and not args.yes:
        answer = input(f"delete bucket {bucket} and every record in it? type its name: ")
        if answer.strip() != bucket:
            raise SystemExit("teardown: not confirmed; nothing deleted")
    if outputs is not None:
        cfn.delete_stack(StackName=args.stack)
        cfn.get_waiter("stack_delete_complete").wait(StackName=args.stack)
        print(f"teardown: stack {args.stack} deleted")
    if bucket and args.purge:
        count = purge_bucket(boto3.client("s3", region_name=args.region), bucket)
        print(f"teardown: bucket {bucket} deleted with {count} object versions")
    elif bucket:
        print(f"teardown: bucket {bucket} kept with its records (run again with --purge to delete)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
