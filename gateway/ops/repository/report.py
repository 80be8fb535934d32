"""The install report as the CLI prints it (MODELS.json holds the same facts)."""

from __future__ import annotations

from gateway.ops.repository.install import InstalledModel


def describe_installed(model: InstalledModel) -> str:
    """A few indented lines: path, source and sha256, how it is batched and why, self-check."""
    check = model.check
    indent = " " * 13
    lines = [f"  {model.name:<10} {model.path}"]
    lines.append(
        f"{indent}source {model.source}" + (f", sha256 {model.sha256}" if model.sha256 else "")
    )
    lines += [f"{indent}{note}" for note in model.notes]
    lines.append(
        f"{indent}self-check: max abs diff {check.max_abs_diff:.3g} "
        f"(tolerance {check.tolerance:g}) against the upstream file fed InsightFace's way"
    )
    lines.append(f"{indent}{model.provider.describe()}")
    return "\n".join(lines)
