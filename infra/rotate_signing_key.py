#!/usr/bin/env python3
"""Rotate the reviewer app's signing key: a new key signs from now on, the old one still
verifies what it signed.

Usage::

    python infra/rotate_signing_key.py STACK            # new seed; the old public key kept
    python infra/rotate_signing_key.py STACK --retire   # also forget every previous key

The stack's secret (``SigningKey`` in template.yaml) holds ``{"seed": ..., "previous":
["ed25519:...", ...]}``. Rotating moves the current key's public half into ``previous`` (the app
publishes it at /.well-known/hitl-keys beside the new one, so answers signed before stay
verifiable) and writes a new random seed. Lambda instances read the secret once, so new ones
sign with the new key; publish a new version (or wait for instances to recycle) to be sure.
``--retire`` drops the previous keys: what they signed no longer counts anywhere that fetches
the app's keys (tasks pinning keys in HITL_VERIFY_KEYS must drop them themselves). Uses boto3.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import Any


def secret_arn(cfn: Any, stack: str) -> str:
    """The ARN of the stack's signing-key secret."""
    found = cfn.describe_stack_resource(StackName=stack, LogicalResourceId="SigningKey")
    return str(found["StackResourceDetail"]["PhysicalResourceId"])


def rotate(client: Any, arn: str, *, retire: bool = False) -> dict[str, Any]:
    """Write the rotated secret; returns it (without the seed) for printing."""
    from hitl_sdk.answers import Signer

    stored = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
    current = Signer.from_seed(str(stored["seed"]))
    previous = [] if retire else [*stored.get("previous", []), current.public.text]
    seed = secrets.token_urlsafe(48)
    client.put_secret_value(
        SecretId=arn, SecretString=json.dumps({"seed": seed, "previous": previous})
    )
    return {
        "signing_key": Signer.from_seed(seed).public.text,
        "previous": previous,
        "retired": [current.public.text] if retire else [],
    }


def main(argv: list[str] | None = None) -> int:
    import boto3

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack")
    parser.add_argument("--region")
    parser.add_argument("--retire", action="store_true", help="also forget every previous key")
    args = parser.parse_args(argv)
    session = boto3.session.Session(region_name=args.region)
    arn = secret_arn(session.client("cloudformation"), args.stack)
    done = rotate(session.client("secretsmanager"), arn, retire=args.retire)
    print(json.dumps(done, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
