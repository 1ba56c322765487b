#include "dedupe.h"

int main(int argc, char **argv) { return vg_svc_main(&dedupe_service, argc, argv); }
