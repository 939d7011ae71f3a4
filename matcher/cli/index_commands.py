"""`matcher index ...`: build, inspect, verify, add to, remove from and clean up an index folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from .common import RUNTIME_HELP, _runtime, _say, domain_errors, index_app


@index_app.command("build")
@domain_errors
def index_build(catalog_dir: Path = typer.Argument(..., help="Folder of <brand>/<image> reference photos."),
                out: Path = typer.Option(..., "--out", "-o", help="Index folder to create or publish a new version in."),
                threads: Optional[int] = typer.Option(None, help="CPU threads for the CNN."),
                runtime: str = typer.Option("auto", help=RUNTIME_HELP)):
    """Build an index of a brand catalog and publish it as a new version of OUT."""
    from ..building import build_index

    published = build_index(catalog_dir, out, runtime=_runtime(runtime), threads=threads, progress=_say)
    typer.echo(str(published))


@index_app.command("info")
@domain_errors
def index_info(index_dir: Path = typer.Argument(..., help="Index folder."),
               as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
               references: bool = typer.Option(False, "--references",
                                               help="List every reference by the path results rows and "
                                                    "`index disable` use, marked genuine / known fake / disabled.")):
    """Brands, counts, model, version, size and operating threshold of an index."""
    from ..index import published_manifest, region_runtime_of, store

    folder, manifest = published_manifest(index_dir)
    if as_json:
        typer.echo(json.dumps(manifest, indent=2, sort_keys=True))
        return
    size = sum(meta.get("bytes", 0) for meta in manifest.get("files", {}).values())
    fp = manifest.get("fingerprint", {})
    typer.echo(f"index:      {Path(index_dir).resolve()}")
    typer.echo(f"version:    {folder.name} (of {len(store.list_versions(index_dir))} kept), created {manifest.get('created')}")
    typer.echo(f"model:      {fp.get('backbone_timm')} weights {str(fp.get('weights_sha256'))[:12]} runtime {fp.get('runtime')}"
               f", region crops {region_runtime_of(fp)}")
    typer.echo(f"descriptor: {json.dumps(fp.get('descriptor'))} -> whitened {manifest.get('dim')}-d, {manifest.get('metric')}")
    typer.echo(f"index type: {manifest.get('index_type')}, {size / 1e6:.1f} MB on disk")
    typer.echo(f"threshold:  {manifest.get('operating_threshold')} (brand score for a copy/same_product verdict)")
    calibration = manifest.get("calibration", {})
    if "gate_threshold" in calibration:
        typer.echo(f"gate:       {calibration['gate_threshold']:.3f} (keeps {calibration.get('gate_recall', 0.99):.0%} "
                   f"of the synthetic listings the full cascade detects; "
                   f"{calibration['gate_pass_rate_negatives']:.0%} of the others pass)")
    if calibration.get("likeness_threshold") is not None:
        typer.echo(f"likeness:   {calibration['likeness_threshold']:.3f} (listings less like the synthetic ones skip "
                   f"the expensive stages; with the gate, {calibration['gate_kept_positives']:.1%} of detections kept)")
    counts = manifest.get("counts", {})
    typer.echo(f"brands:     {counts.get('brands')} brands, {counts.get('references')} references")
    prices = manifest.get("typical_prices", {})
    feedback = manifest.get("feedback", {})
    fakes = feedback.get("known_fakes", {})
    for brand, n in manifest.get("brands", {}).items():
        price = f", typical price {prices[brand]:.2f}" if brand in prices else ""
        fake = f" (+{fakes[brand]} known fake{'s' if fakes[brand] > 1 else ''})" if fakes.get(brand) else ""
        typer.echo(f"  {brand}: {n}{fake}{price}")
    if feedback:
        typer.echo(f"feedback:   {sum(fakes.values())} known fakes, {sum(feedback.get('negatives', {}).values())} "
                   f"negative examples, {len(feedback.get('disabled_references', []))} disabled references, "
                   f"{feedback.get('decisions', 0)} decisions (decisions.jsonl)")
    if references:
        from ..index.feedback_bank import labelled_references

        for ref_id, _, path, label in labelled_references(folder, manifest.get("files")):
            typer.echo(f"  [{ref_id}] {path} ({label})")


@index_app.command("verify")
@domain_errors
def index_verify(index_dir: Path = typer.Argument(..., help="Index folder.")):
    """Check the published version's manifest against its seal and every file against the sha256 it records."""
    from ..index import check_files, published_manifest
    from ..index.manifest import is_sealed

    folder, manifest = published_manifest(index_dir)  # the pointer and the manifest's seal are checked here
    check_files(folder, manifest, hashes=True)
    seal = ("manifest.json matches manifest.sha256" if is_sealed(folder)
            else "manifest.json has no seal: published before manifests were sealed")
    typer.echo(f"ok: {folder} ({len(manifest.get('files', {}))} files match manifest.json; {seal})")


@index_app.command("add")
@domain_errors
def index_add(index_dir: Path = typer.Argument(..., help="Index folder (built with `matcher index build`)."),
              catalog_dir: Path = typer.Argument(..., help="Folder of <brand>/<image> photos: each brand in it is "
                                                           "added, or replaces the indexed brand of that name."),
              keep: Optional[int] = typer.Option(None, "--keep", min=1, help="Versions to keep (default: the index's)."),
              threads: Optional[int] = typer.Option(None, help="CPU threads for the CNN.")):
    """Add (or replace) the brands of CATALOG_DIR without a rebuild; publishes a new version.

    Only photos the index does not hold yet are embedded. Whitening and calibration stay as built.
    """
    from ..building import add_to_index
    from ..cascade import load_embedder_for

    published = add_to_index(index_dir, catalog_dir, embedder=load_embedder_for(index_dir, threads=threads),
                             keep=keep, progress=_say)
    typer.echo(str(published))


@index_app.command("remove")
@domain_errors
def index_remove(index_dir: Path = typer.Argument(..., help="Index folder."),
                 brands: List[str] = typer.Argument(..., help="Brand names to remove (as `matcher index info` lists them)."),
                 keep: Optional[int] = typer.Option(None, "--keep", min=1, help="Versions to keep (default: the index's).")):
    """Remove brands and their references from an index; publishes a new version."""
    from ..building import remove_from_index

    typer.echo(str(remove_from_index(index_dir, brands, keep=keep, progress=_say)))


@index_app.command("gc")
@domain_errors
def index_gc(index_dir: Path = typer.Argument(..., help="Index folder."),
             keep: Optional[int] = typer.Option(None, "--keep", min=1,
                                                help="Versions to keep, the published one included (default: the index's, 3).")):
    """Delete old versions and debris left by interrupted builds/adds (the published version always stays)."""
    from ..building import gc_index, index_versions

    removed = gc_index(index_dir, keep=keep)
    for path in removed:
        typer.echo(f"removed {path}")
    kept = index_versions(index_dir)
    names = ", ".join(v["name"] + (" (current)" if v["current"] else " (in use by a running process)"
                                   if v.get("in_use") else "") for v in kept)
    typer.echo(f"{len(removed)} removed; kept {len(kept)} version(s): {names}")
