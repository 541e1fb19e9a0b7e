"""The data path: MQTT in (paho's thread) -> a bounded queue -> the writer thread -> Redis.

``mqtt_source`` holds the one broker connection and hands each message over as a plain tuple;
``writer`` drains the queue in batches and ``redis_sink`` writes them (PUBLISH + XADD, one script
call per chunk). Builds on the contract only.
"""
