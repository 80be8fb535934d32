"""The upstream InsightFace files facegate serves, pinned by sha256, and where to get them.

Licence: InsightFace's pretrained models (buffalo_l, buffalo_s, inswapper_128) are released
for non-commercial research purposes only; the InsightFace code is MIT, the weights are not.
facegate downloads them on the operator's behalf and never redistributes them. See
https://github.com/deepinsight/insightface#license.

A pack provides a detector, a recognizer, the genderage model and the two landmark models
(2d106det, 1k3d68); the swapper is chosen
separately; the liveness addon comes with every fetch. Every pack file and the swapper have two
sources: a Hugging Face hub repository (a public mirror, pinned to a commit) and a plain HTTPS
URL (the official InsightFace release zip for the packs). The liveness addon has only its
release URL (the one insightface 2.1 pins), which both sources use. The sha256 is the trust
anchor, not the host: a mirror that serves other bytes fails verification.

Roles are the Triton model names of `gateway.triton.spec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gateway.triton.spec import (
    DETECTOR,
    GENDERAGE,
    LANDMARK_2D106,
    LANDMARK_3D68,
    LIVENESS,
    RECOGNIZER,
    SWAPPER,
)

LICENCE_NOTE = (
    "InsightFace's pretrained models (buffalo_l, buffalo_s, inswapper_128) are available for "
    "non-commercial research purposes only. By fetching them you accept those terms: "
    "https://github.com/deepinsight/insightface#license"
)

ROLES = (DETECTOR, RECOGNIZER, SWAPPER, GENDERAGE, LIVENESS, LANDMARK_2D106, LANDMARK_3D68)
# Roles a fetch or an import may lack (a failed download or pin is skipped with a warning): the
# gateway serves everything else without them and answers 503 for their features.
OPTIONAL_ROLES = (GENDERAGE, LIVENESS, LANDMARK_2D106, LANDMARK_3D68)

_RELEASE_V07 = "https://github.com/deepinsight/insightface/releases/download/v0.7"


@dataclass(frozen=True)
class HfSource:
    """A file in a Hugging Face hub repository, at a pinned revision."""

    repo_id: str
    path_in_repo: str
    revision: str


@dataclass(frozen=True)
class UrlSource:
    """A file at an HTTPS URL; with `archive`, a member of the zip at that URL.

    Members are matched by base name wherever they sit in the archive (the official zips
    keep the .onnx files at the top level or under one folder).
    """

    url: str
    archive: bool = False


@dataclass(frozen=True)
class ModelFile:
    """One upstream model file: its name, pinned digest and sources.

    `hf` is None for a file no hub repository mirrors: the hub source then downloads it from
    `url` too.
    """

    role: str
    filename: str
    sha256: str
    size_bytes: int | None
    hf: HfSource | None
    url: UrlSource


@dataclass(frozen=True)
class Pack:
    """An InsightFace model pack reduced to the files facegate serves."""

    name: str
    detector: ModelFile
    recognizer: ModelFile
    genderage: ModelFile | None = None
    # insightface's Landmark models (dense landmarks, head pose), optional like genderage.
    landmarks: tuple[ModelFile, ...] = ()

    def optional_files(self) -> tuple[ModelFile, ...]:
        """The pack's optional files: genderage and the landmark models it ships."""
        return (*((self.genderage,) if self.genderage else ()), *self.landmarks)


# Digests and sizes: the files of InsightFace's v0.7 release zips. Each value was confirmed
# in several independent public projects that pin the same file, among them uniface's
# model-store digests (SCRFD_10G_KPS / SCRFD_500M_KPS / ArcFace RESNET / MNET), VisoMaster's
# models_data.py and checksum tables that name the zip member and its byte size.
#
# buffalo_l mirror: hf.co/public-data/insightface at 33c1063c, files under models/buffalo_l/,
# cited with these digests as the v0.7 pack (byte-compared with the zip members).
_BUFFALO_L_HF = (
    "public-data/insightface",
    "models/buffalo_l",
    "33c1063c49c785b7652d3fd529f86fa4f149392b",
)
# buffalo_s mirror: hf.co/deepghs/insightface at 4e1f33d3, files under buffalo_s/, cited with
# these digests and sizes (det_500m and w600k_mbf are identical in buffalo_s and buffalo_sc).
_BUFFALO_S_HF = ("deepghs/insightface", "buffalo_s", "4e1f33d3fe0e50a0945f3a53ab94ae8977ae7ddb")


def _pack_file(
    role: str, filename: str, sha256: str, size_bytes: int, hf: tuple[str, str, str], zip_url: str
) -> ModelFile:
    repo_id, folder, revision = hf
    return ModelFile(
        role=role,
        filename=filename,
        sha256=sha256,
        size_bytes=size_bytes,
        hf=HfSource(repo_id, f"{folder}/{filename}", revision),
        url=UrlSource(zip_url, archive=True),
    )


def _landmark_files(hf: tuple[str, str, str], zip_url: str) -> tuple[ModelFile, ModelFile]:
    """2d106det.onnx and 1k3d68.onnx of a pack.

    Digests and sizes of the v0.7 zip members as several independent public projects pin them
    (model-store tables listing them beside det_10g, w600k_r50 and genderage with the digests
    pinned here, and roop-style README hash lists); the same bytes ship in antelopev2.
    """
    return (
        # 106 2-D landmarks: 192x192 crops -> 212 values.
        _pack_file(
            LANDMARK_2D106,
            "2d106det.onnx",
            "f001b856447c413801ef5c42091ed0cd516fcd21f2d6b79635b1e733a7109dbf",
            5_030_888,
            hf,
            zip_url,
        ),
        # 68 3-D landmarks (head pose): 192x192 crops -> 1103 x 3 values.
        _pack_file(
            LANDMARK_3D68,
            "1k3d68.onnx",
            "df5c06b8a0c12e422b2ed8947b8869faa4105387f199c477af038aa01f9a45cc",
            143_607_619,
            hf,
            zip_url,
        ),
    )


BUFFALO_L = Pack(
    name="buffalo_l",
    # SCRFD-10GF with keypoints.
    detector=_pack_file(
        DETECTOR,
        "det_10g.onnx",
        "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
        16_923_827,
        _BUFFALO_L_HF,
        f"{_RELEASE_V07}/buffalo_l.zip",
    ),
    # ArcFace IResNet-50 trained on WebFace600K.
    recognizer=_pack_file(
        RECOGNIZER,
        "w600k_r50.onnx",
        "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
        174_383_860,
        _BUFFALO_L_HF,
        f"{_RELEASE_V07}/buffalo_l.zip",
    ),
    # insightface's Attribute model (gender, age): 96x96 crops -> [female, male, age / 100].
    # Digest and size of the buffalo_l zip member as pinned by several independent public
    # projects (the same file ships in antelopev2; their listings give det_10g and w600k_r50
    # with the digests pinned above, which ties the table to this pack).
    genderage=_pack_file(
        GENDERAGE,
        "genderage.onnx",
        "4fde69b1c810857b88c64a335084f1c3fe8f01246c9a191b48c7bb756d6652fb",
        1_322_532,
        _BUFFALO_L_HF,
        f"{_RELEASE_V07}/buffalo_l.zip",
    ),
    landmarks=(_landmark_files(_BUFFALO_L_HF, f"{_RELEASE_V07}/buffalo_l.zip")),
)

BUFFALO_S = Pack(
    name="buffalo_s",
    # SCRFD-500MF with keypoints.
    detector=_pack_file(
        DETECTOR,
        "det_500m.onnx",
        "5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a",
        2_524_817,
        _BUFFALO_S_HF,
        f"{_RELEASE_V07}/buffalo_s.zip",
    ),
    # ArcFace MobileFaceNet trained on WebFace600K.
    recognizer=_pack_file(
        RECOGNIZER,
        "w600k_mbf.onnx",
        "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
        13_616_099,
        _BUFFALO_S_HF,
        f"{_RELEASE_V07}/buffalo_s.zip",
    ),
    # buffalo_s.zip ships genderage.onnx too (with 1k3d68 and 2d106det): the same attribute model as buffalo_l's, pinned to the same digest. Were
    # buffalo_s's bytes ever different, the pin fails and the fetch skips the optional file
    # with a warning; the detector and recognizer still install.
    genderage=_pack_file(
        GENDERAGE,
        "genderage.onnx",
        "4fde69b1c810857b88c64a335084f1c3fe8f01246c9a191b48c7bb756d6652fb",
        1_322_532,
        _BUFFALO_S_HF,
        f"{_RELEASE_V07}/buffalo_s.zip",
    ),
    # The same two landmark files as buffalo_l's (and antelopev2's), pinned to the same digests;
    # a pin that fails skips them with a warning, as for genderage.
    landmarks=(_landmark_files(_BUFFALO_S_HF, f"{_RELEASE_V07}/buffalo_s.zip")),
)

# InsightFace withdrew its own inswapper download; the file circulates through mirrors. The
# digest and size are the ones roop/ReActor/facefusion users and VisoMaster pin; the hub mirror
# ezioruan/inswapper_128.onnx at 6ffdf0e8 and facefusion's asset release both serve it.
INSWAPPER_128 = ModelFile(
    role=SWAPPER,
    filename="inswapper_128.onnx",
    sha256="e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af",
    size_bytes=554_253_681,
    hf=HfSource(
        "ezioruan/inswapper_128.onnx",
        "inswapper_128.onnx",
        "6ffdf0e83c5996cc425e77b59913fc48d79441be",
    ),
    url=UrlSource(
        "https://github.com/facefusion/facefusion-assets/releases/download/models/inswapper_128.onnx"
    ),
)


# insightface 2.1's liveness addon, outside the packs: the digest, size and URL its own
# catalogue pins (insightface/addons/catalog.py, ADDON_CATALOG["liveness"] in the
# insightface==2.1 wheel). No hub mirror is pinned: both fetch sources use the release URL.
LIVENESS_ADDON = ModelFile(
    role=LIVENESS,
    filename="liveness.onnx",
    sha256="87a9ac1dbb16a61eec212957e5095e62a8769c1e188af9b0198f253302c4afdb",
    size_bytes=1_484_006,
    hf=None,
    url=UrlSource(
        "https://github.com/deepinsight/insightface-model-addons/releases/download/addons/liveness.onnx"
    ),
)
# Files every fetch adds to the pack's, and that an import takes when they sit next to them.
ADDONS: Mapping[str, ModelFile] = MappingProxyType({LIVENESS: LIVENESS_ADDON})

PACKS: Mapping[str, Pack] = MappingProxyType({p.name: p for p in (BUFFALO_L, BUFFALO_S)})
SWAPPERS: Mapping[str, ModelFile] = MappingProxyType({"inswapper_128": INSWAPPER_128})
DEFAULT_PACK = BUFFALO_L.name
DEFAULT_SWAPPER = "inswapper_128"


def select_files(
    pack: str,
    swapper: str | None,
    *,
    packs: Mapping[str, Pack] = PACKS,
    swappers: Mapping[str, ModelFile] = SWAPPERS,
    addons: Mapping[str, ModelFile] = ADDONS,
) -> dict[str, ModelFile]:
    """Return the files to fetch, by role: the pack's detector, recognizer, genderage and
    landmark models, the swapper, and the addons (liveness).

    Raises ValueError for a pack or swapper name that is not in the catalogue.
    """
    if pack not in packs:
        raise ValueError(f"unknown pack {pack!r}; known: {', '.join(sorted(packs))}")
    chosen = packs[pack]
    files = {DETECTOR: chosen.detector, RECOGNIZER: chosen.recognizer}
    files.update({f.role: f for f in chosen.optional_files()})
    if swapper is not None:
        if swapper not in swappers:
            raise ValueError(f"unknown swapper {swapper!r}; known: {', '.join(sorted(swappers))}")
        files[SWAPPER] = swappers[swapper]
    files.update(addons)
    return files


def pinned_files(role: str) -> list[ModelFile]:
    """Every catalogue file that can fill `role` (for installing one local file by hand)."""
    candidates = [
        f for p in PACKS.values() for f in (p.detector, p.recognizer, *p.optional_files())
    ]
    candidates += [*SWAPPERS.values(), *ADDONS.values()]
    return [f for f in candidates if f.role == role]
