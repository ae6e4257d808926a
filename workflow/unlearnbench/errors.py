"""User-facing errors: raised for bad input, printed as one actionable line by the rule scripts."""


class UserError(Exception):
    """Bad input (config, dataset path, checkpoint, class index). The message is shown as-is."""


class AccessError(UserError):
    """An unlearning method touched data it did not declare in its access contract."""
