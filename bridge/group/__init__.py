"""The bridge group: several bridges sharing one broker's traffic through shared subscriptions.

Names and filters (``$share/<group>/…``), the leader lease and its fencing token, membership,
the member's role, and the leader's adoption of a dead member's broker session. Builds on the
data path (it drains an adopted session through a sink) and the contract.
"""
