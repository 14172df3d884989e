"""`neurorave evaluate`: the models' evaluation, with the instrument's own playing checks
handed in (the models side measures a model and knows nothing of the module)."""
from neurorave.firmware.instrument_check import play_checks
from neurorave.models.evaluation.command import main as evaluate_main


def main(args) -> int:
    return evaluate_main(args, play_checks=play_checks)
