"""The flow pillar: NetFlow/IPFIX/sFlow/CSV ingest, volumetric DDoS detection, per-flow classification.

See docs/flow.md. Heavy dependencies (LightGBM, pyarrow) load only when the classifier or a CSV reader
is used.
"""

from fsbrain.domains.flow.classifier import FlowClassifier
from fsbrain.domains.flow.collector import UdpCollector
from fsbrain.domains.flow.config import DetectorConfig
from fsbrain.domains.flow.detector import VolumetricDetector, detect
from fsbrain.domains.flow.fileio import read_flows
from fsbrain.domains.flow.nfdecode import NetflowDecoder
from fsbrain.domains.flow.records import FLOW_DTYPE, DecodeStats, make_records
from fsbrain.domains.flow.sflow import SflowDecoder
from fsbrain.domains.flow.simulator import default_scenario, evaluate, simulate

__all__ = [
    "FLOW_DTYPE",
    "DecodeStats",
    "DetectorConfig",
    "FlowClassifier",
    "NetflowDecoder",
    "SflowDecoder",
    "UdpCollector",
    "VolumetricDetector",
    "default_scenario",
    "detect",
    "evaluate",
    "make_records",
    "read_flows",
    "simulate",
]
