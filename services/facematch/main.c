#include "facematch.h"

int main(int argc, char **argv) { return vg_svc_main(&facematch_service, argc, argv); }
